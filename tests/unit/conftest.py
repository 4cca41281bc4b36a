"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from tests.support import TlsFiles, make_tls_files


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A CA with a server and a client certificate (real PEM files, made once)."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))
