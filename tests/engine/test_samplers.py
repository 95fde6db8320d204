from facescope.engine.samplers import ShardedSampler


def batches(sampler: ShardedSampler) -> list[list[int]]:
    order = list(sampler)
    return [order[i : i + sampler.batch_size] for i in range(0, len(order), sampler.batch_size)]


def test_ranks_split_the_global_batches_of_one_process():
    single = ShardedSampler(10, batch_size=4, seed=3)
    ranks = [ShardedSampler(10, batch_size=2, seed=3, rank=r, world_size=2) for r in range(2)]
    for s in [single, *ranks]:
        s.set_epoch(1)
    global_batches = batches(single)  # 10 samples padded to 12 -> 3 global batches of 4
    assert len(global_batches) == 3 and len(set(sum(global_batches, []))) == 10
    per_rank = [batches(s) for s in ranks]
    for b in range(3):
        assert per_rank[0][b] + per_rank[1][b] == global_batches[b]


def test_epochs_differ_and_resume_skips_done_batches():
    sampler = ShardedSampler(12, batch_size=3, seed=0)
    sampler.set_epoch(0)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != epoch0
    sampler.set_epoch(0, start_batch=2)
    assert list(sampler) == epoch0[6:] and len(sampler) == 6
