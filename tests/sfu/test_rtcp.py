from __future__ import annotations

import os

import pytest

from sfu import rtcp


def test_sr_roundtrip_with_report_block() -> None:
    block = rtcp.ReportBlock(0x22, 12, 345, 70000, 17, 0xABCD, 100)
    data = rtcp.build_sr(0x11, rtcp.ntp_from_unix(1_700_000_000.5), 9000, 10, 12000, [block])
    (msg,) = rtcp.parse(data)
    assert msg.pt == rtcp.SR and msg.sender_ssrc == 0x11
    assert msg.sender_info is not None and msg.sender_info[1:] == (9000, 10, 12000)
    assert msg.reports == (block,)


def test_compound_rr_remb_pli_nack_fir() -> None:
    data = (
        rtcp.build_rr(1, [rtcp.ReportBlock(2, 0, 0, 5, 0, 0, 0)])
        + rtcp.build_remb(1, 1_234_567, [2, 3])
        + rtcp.build_pli(1, 2)
        + rtcp.build_nack(1, 2, [65535, 0, 1, 5, 40])
        + rtcp.build_fir(1, 2, 9)
    )
    rr, remb, pli, nack, fir = rtcp.parse(data)
    assert rr.pt == rtcp.RR and rr.reports[0].ssrc == 2
    assert remb.items == (2, 3) and abs(remb.bitrate_bps - 1_234_567) / 1_234_567 < 0.001
    assert (pli.pt, pli.fmt, pli.media_ssrc) == (rtcp.PSFB, rtcp.FMT_PLI, 2)
    assert sorted(nack.items) == sorted([65535, 0, 1, 5, 40])
    assert fir.items == (2,)


def test_nack_bitmask_packing() -> None:
    data = rtcp.build_nack(1, 2, range(100, 117))
    (msg,) = rtcp.parse(data)
    assert list(msg.items) == list(range(100, 117))
    assert len(data) == 16  # one FCI entry covers pid + 16 following


@pytest.mark.parametrize("data", [b"", b"\x80", b"\x00\xc8\x00\x01" + bytes(4),
                                  b"\x80\xc9\x00\x10" + bytes(8),
                                  rtcp.build_pli(1, 2) + b"\x80"])
def test_malformed_rtcp_raises(data: bytes) -> None:
    with pytest.raises(rtcp.RtcpError):
        rtcp.parse(data)


def test_random_garbage_never_raises_anything_but_rtcp_error() -> None:
    for i in range(2000):
        data = bytes([0x80 | (i % 32), 200 + i % 7]) + os.urandom(i % 60)
        try:
            rtcp.parse(data)
        except rtcp.RtcpError:
            pass
