import pytest

from facescope.engine.schedule import learning_rate


def test_linear_warmup_then_steps_by_hand():
    def lr(iteration, epoch):
        return learning_rate(0.01, iteration, epoch, warmup_iters=1500, warmup_ratio=0.001, milestones=(440, 544), gamma=0.1)

    assert lr(0, 0) == pytest.approx(0.01 * 0.001)  # starts at warmup_ratio x lr
    assert lr(750, 0) == pytest.approx(0.01 * (1 - 0.5 * 0.999))  # half way: 0.0050050
    assert lr(1500, 0) == 0.01
    assert lr(10**6, 439) == 0.01
    assert lr(10**6, 440) == pytest.approx(0.001)
    assert lr(10**6, 544) == pytest.approx(0.0001)
