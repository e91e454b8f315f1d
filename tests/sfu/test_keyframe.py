from sfu.keyframe import KeyframeThrottle


def test_at_most_one_request_per_interval() -> None:
    k = KeyframeThrottle(500)
    sent = [t for t in range(0, 2000, 50) if k.should_send(t)]
    assert sent == [0, 500, 1000, 1500]
    assert k.suppressed == 40 - 4
