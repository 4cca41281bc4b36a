"""``PUT /config`` may include files of the config directory only (issue 11 point 3).

A token holder could read any file the api could: ``include "/some/file"`` or
``include "../file"`` answered 422 quoting the file's first token. Now an
include that leaves the config directory (by path, ``..`` or symlink) is
refused before the file is opened, and an error inside an included file names
the file, line, column and reason without quoting its content.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

    from tests.api.conftest import ApiSite

SENTINEL = "outside_sentinel_4b1f"


def _put(site: ApiSite, text: str) -> httpx.Response:
    return site.http().put("/config", content=text, headers={"Content-Type": "text/plain"})


def _outside_file(site: ApiSite) -> Path:
    outside = site.workdir.parent / f"{site.workdir.name}-secret.conf"
    outside.write_text(f"{SENTINEL}: 1\n")
    return outside


def _refused_outside(site: ApiSite, include: str) -> None:
    before = site.config_path.read_text()
    resp = _put(site, f"server_name: ok\ninclude {include}\n")
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert SENTINEL not in resp.text
    assert "outside the config directory" in body["error"]
    assert (body["line"], body["column"]) == (2, 1)
    assert body["file"] == str(site.config_path)
    assert site.config_path.read_text() == before


def test_absolute_include_outside_is_refused(site: ApiSite) -> None:
    _refused_outside(site, f'"{_outside_file(site)}"')


def test_relative_include_outside_is_refused(site: ApiSite) -> None:
    outside = _outside_file(site)
    _refused_outside(site, f'"../{outside.name}"')


def test_symlink_to_outside_is_refused(site: ApiSite) -> None:
    link = site.config_path.parent / "linked.conf"
    link.symlink_to(_outside_file(site))
    _refused_outside(site, "linked.conf")


def test_error_in_an_included_file_withholds_its_content(site: ApiSite) -> None:
    inside = site.config_path.parent / "auth.conf"
    inside.write_text(
        "authorization {\n"
        "  user: alice\n"
        "  password: 'inside-secret-9d2e'\n"
        f"  {SENTINEL}: 'inside-value-77c1'\n"
        "}\n"
    )
    resp = _put(site, "include auth.conf\n")
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert (body["file"], body["line"], body["column"]) == (str(inside), 4, 3)
    assert body["error"].startswith("unknown field")
    for secret in (SENTINEL, "inside-secret-9d2e", "inside-value-77c1"):
        assert secret not in resp.text


def test_errors_in_the_sent_text_still_quote_it(site: ApiSite) -> None:
    resp = _put(site, 'server_name: ok\nport: "not-a-port"\n')
    assert resp.status_code == 422, resp.text
    assert "'not-a-port'" in resp.json()["error"]


def test_include_inside_the_config_directory_works(site: ApiSite) -> None:
    inside = site.config_path.parent / "name.conf"
    # A key a reload applies (server_name would need a restart: 409).
    inside.write_text("max_payload: 2MB\n")
    text = site.config_path.read_text().replace("\n", "\n", 1) + "include name.conf\n"
    resp = _put(site, text)
    assert resp.status_code == 200, resp.text
    assert site.config_path.read_text() == text
    assert site.http().get("/varz").json()["max_payload"] == 2 * 1024 * 1024


def test_reload_error_withholds_the_files_content(site: ApiSite) -> None:
    # POST /config/reload re-reads files the caller did not send.
    site.config_path.write_text(
        "authorization {\n  user: a\n  password: 'file-secret-31ab'\n  pasword: x\n}\n"
    )
    resp = site.http().post("/config/reload")
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert (body["line"], body["column"]) == (4, 3)
    assert body["error"].startswith("unknown field")
    assert "file-secret-31ab" not in resp.text
    assert "pasword" not in resp.text
