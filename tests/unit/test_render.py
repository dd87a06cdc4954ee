"""scripts/asterisk/render.sh, the one renderer of Asterisk's templates (image and rig):
placeholders from the environment, later directories override, nothing half-written."""

from __future__ import annotations

import subprocess
from pathlib import Path

RENDER = Path(__file__).resolve().parents[2] / "scripts" / "asterisk" / "render.sh"


def render(out: Path, *dirs: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RENDER), str(out), *map(str, dirs)],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_placeholders_are_filled_and_a_later_directory_overrides(tmp_path: Path) -> None:
    prod, overlay = tmp_path / "prod", tmp_path / "overlay"
    prod.mkdir()
    overlay.mkdir()
    (prod / "pjsip.conf").write_text("bind = @SIP_BIND@:@SIP_PORT@\n#tryinclude pjsip_local.conf\n")
    (prod / "rtp.conf").write_text("rtpstart = @RTP_START@\n")
    (overlay / "rtp.conf").write_text("rtpstart = 20000\n")
    (overlay / "pjsip_local.conf").write_text("[phone](x)\n")
    res = render(tmp_path / "etc", prod, overlay, SIP_BIND="0.0.0.0", SIP_PORT="5060")
    assert res.returncode == 0, res.stderr
    etc = tmp_path / "etc"
    assert (etc / "pjsip.conf").read_text().startswith("bind = 0.0.0.0:5060\n")
    assert (etc / "rtp.conf").read_text() == "rtpstart = 20000\n"  # RTP_START was not needed
    assert (etc / "pjsip_local.conf").exists()


def test_an_unset_or_unsafe_value_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    prod = tmp_path / "prod"
    prod.mkdir()
    (prod / "a.conf").write_text("x = @ONE@ @TWO@\n")
    res = render(tmp_path / "etc", prod, ONE="1")
    assert res.returncode == 1 and "unset: TWO" in res.stderr, res.stderr
    assert not (tmp_path / "etc").exists()
    res = render(tmp_path / "etc", prod, ONE="1", TWO="a|b")
    assert res.returncode == 1 and "TWO holds a character" in res.stderr, res.stderr
    assert not (tmp_path / "etc").exists()
    res = render(tmp_path / "etc", prod, ONE="1", TWO="2", ARI_PASSWORD="s")
    assert res.returncode == 0 and (tmp_path / "etc/a.conf").read_text() == "x = 1 2\n"
