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


def entrypoint(tmp_path: Path) -> Path:
    """The Asterisk image's entrypoint (Dockerfile heredoc), pointed at this checkout and
    stopping where it would exec Asterisk."""
    root = RENDER.parents[2]
    text = (root / "Dockerfile").read_text()
    script = text.split("<<'SCRIPT' /usr/local/bin/tollgate-asterisk\n", 1)[1].split("\nSCRIPT\n")[
        0
    ]
    script = script.replace("tollgate-asterisk-render", str(RENDER))
    script = script.replace("/etc/tollgate/asterisk", str(root / "configs" / "asterisk"))
    script = script.replace(
        'exec /usr/sbin/asterisk -f -C "$RUN/etc/asterisk.conf"', "echo started"
    )
    path = tmp_path / "entrypoint.sh"
    path.write_text(script)
    return path


def test_the_image_entrypoint_renders_the_production_configuration(tmp_path: Path) -> None:
    site = {
        "ASTERISK_RUN": str(tmp_path / "run"),
        "ARI_PASSWORD": "ari-secret",
        "PG_PASSWORD": "pg-secret",
        "EXTERNAL_ADDRESS": "203.0.113.5",
        "LOCAL_NET": "10.0.0.0/8",
        "CARRIER_HOST": "sip.carrier.example",
        "CARRIER_MATCH": "198.51.100.0/24",
    }
    script = entrypoint(tmp_path)
    res = subprocess.run(
        ["bash", str(script)],
        env={"PATH": "/usr/bin:/bin", **site},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0 and res.stdout.strip() == "started", res.stderr
    etc = tmp_path / "run" / "etc"
    pjsip = (etc / "pjsip.conf").read_text()
    assert "bind = 0.0.0.0:5061" in pjsip and "contact = sip:sip.carrier.example" in pjsip
    assert "external_media_address = 203.0.113.5" in pjsip and "local_net = 10.0.0.0/8" in pjsip
    # no certificate mounted: a self-signed one, so the TLS transport loads
    assert f"cert_file = {tmp_path}/run/keys/tls.crt" in pjsip
    assert "dbpass = pg-secret" in (etc / "res_pgsql.conf").read_text()
    assert "ari-secret" not in (etc / "ari.conf").read_text()  # only its crypt(3) hash
    # a site value left out: refused by name, before anything starts
    res = subprocess.run(
        ["bash", str(script)],
        env={"PATH": "/usr/bin:/bin", **{k: v for k, v in site.items() if k != "CARRIER_HOST"}},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode != 0 and "CARRIER_HOST must be set" in res.stderr
