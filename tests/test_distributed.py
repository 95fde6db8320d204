"""The one distributed helper module: identities in one process, gathers across gloo processes."""

import os
import socket

import torch
import torch.multiprocessing as mp

from facescope import distributed


def test_single_process_collectives_are_identities():
    x = torch.arange(3)
    assert distributed.all_gather_cat(x) is x
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    assert distributed.rank_world() == (0, 1) and not distributed.is_initialized()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gather_main(rank, port, out_dir):
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    with distributed.process_group_if_needed() as (r, world):
        rows = torch.arange(rank + 1, dtype=torch.float32) + 10 * rank  # rank 0: [0], rank 1: [10, 11]
        gathered = distributed.all_gather_cat(rows)
        shared = distributed.broadcast_object(f"from {r}/{world}")
        torch.save({"gathered": gathered, "shared": shared}, f"{out_dir}/rank{rank}.pt")
    assert not distributed.is_initialized()  # the group made for the block is gone


def test_all_gather_cat_concatenates_unequal_rows_in_rank_order(tmp_path):
    mp.spawn(_gather_main, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert torch.equal(result["gathered"], torch.tensor([0.0, 10.0, 11.0])) and result["shared"] == "from 0/2"
