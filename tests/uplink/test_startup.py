"""Start-up checks of ``leafnode uplink``: bad remotes are config errors, not crash loops."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

from tests.uplink.conftest import remote_config

if TYPE_CHECKING:
    from pathlib import Path


def run_uplink(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leafnode", "uplink", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_malformed_creds_file_is_a_start_up_error(tmp_path: Path) -> None:
    creds = tmp_path / "bad.creds"
    creds.write_text("this is not a creds file\n")
    config = tmp_path / "leaf.conf"
    config.write_text(remote_config(f'{{ name: c, url: "127.0.0.1:1", credentials: "{creds}" }}'))
    result = run_uplink(config)
    assert result.returncode == 1
    # The config loader checks the file's shape (so `leafnode check` refuses it too).
    assert f"{config}:5:32: leafnodes.remotes[0].credentials: not a usable .creds file" in (
        result.stderr
    )
    assert "no user JWT block" in result.stderr
    assert "this is not" not in result.stderr


def test_missing_creds_file_and_bad_url_are_config_errors(tmp_path: Path) -> None:
    config = tmp_path / "leaf.conf"
    config.write_text(remote_config(f'{{ url: "127.0.0.1:1", credentials: "{tmp_path}/nope" }}'))
    result = run_uplink(config)
    assert result.returncode == 1
    assert f"{config}:5:" in result.stderr
    assert "does not exist" in result.stderr
    config.write_text(remote_config('{ url: "http://127.0.0.1:1" }'))
    result = run_uplink(config)
    assert result.returncode == 1
    assert f"{config}:5:" in result.stderr
    assert "unsupported URL scheme" in result.stderr


def test_unreadable_certificate_is_a_start_up_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate\n")
    config = tmp_path / "leaf.conf"
    config.write_text(remote_config(f'{{ url: "127.0.0.1:1", tls {{ ca_file: "{bogus}" }} }}'))
    result = run_uplink(config)
    assert result.returncode == 1
    # The config loader loads TLS files (so `leafnode check` refuses them too).
    assert f"{config}:5:29: leafnodes.remotes[0].tls.ca_file: cannot load the CA" in result.stderr
