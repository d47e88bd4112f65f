"""Drives every emulator route through the official Dropbox Python SDK, over TLS.

Run by tests/sdk_fidelity.rs, which starts the emulator and sets:
  DROPBOX_API_HOST, DROPBOX_API_CONTENT_HOST, DROPBOX_API_NOTIFY_HOST, DROPBOX_WEB_HOST
  REQUESTS_CA_BUNDLE (the test CA), EMU_TOKEN, EMU_APP_KEY, EMU_APP_SECRET, EMU_BASE.
The SDK validates every result it decodes (required fields, 40-char account ids, revs,
hashes, whole-second timestamps): any decoding error fails a check. Prints one line per check
and a closing 'N passed, N failed'; exits non-zero on any failure.
"""

import os
import re
import struct
import sys
import traceback
import zlib

import dropbox  # noqa: E402  (hosts are read from the environment at import time)
import requests
from dropbox import exceptions
from dropbox.files import (
    DeletedMetadata,
    FileMetadata,
    FolderMetadata,
    PathOrLink,
    SharedLink,
    SharedLinkFileInfo,
    ThumbnailFormat,
    ThumbnailMode,
    ThumbnailSize,
    WriteMode,
)
from dropbox.sharing import FileLinkMetadata, FolderLinkMetadata

TOKEN = os.environ["EMU_TOKEN"]
APP_KEY = os.environ["EMU_APP_KEY"]
APP_SECRET = os.environ["EMU_APP_SECRET"]
BASE = os.environ["EMU_BASE"]
CA = os.environ["REQUESTS_CA_BUNDLE"]

# The official content_hash vector for b"hello world".
HELLO_HASH = "bc62d4b80d9e36da29c16c5d4d9f11731f36052c72401a76c23c0fb5a9b74423"

dbx = dropbox.Dropbox(TOKEN, max_retries_on_error=0, max_retries_on_rate_limit=0)
app = dropbox.Dropbox(app_key=APP_KEY, app_secret=APP_SECRET, max_retries_on_error=0)

results = []


def check(fn):
    try:
        fn()
        results.append((fn.__name__, None))
        print(f"ok - {fn.__name__}", flush=True)
    except Exception:  # noqa: BLE001 - every failure is reported
        results.append((fn.__name__, traceback.format_exc()))
        print(f"FAIL - {fn.__name__}\n{traceback.format_exc()}", flush=True)
    return fn


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def admin(method, path, json=None):
    r = requests.request(method, f"{BASE}/_emulator/{path}", json=json, verify=CA, timeout=10)
    r.raise_for_status()
    return r.json() if r.content else None


def png(w, h):
    """A tiny RGB PNG, built by hand (no imaging library needed)."""
    raw = b"".join(b"\x00" + bytes([200, 30, 30]) * w for _ in range(h))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@check
def users_get_current_account():
    acct = dbx.users_get_current_account()
    expect(len(acct.account_id) == 40, acct.account_id)
    expect(acct.name.display_name, "display name")
    expect(acct.root_info.root_namespace_id, "root namespace")


@check
def serves_the_seeded_directory():
    meta, resp = dbx.files_download("/seed/read me.txt")
    expect(resp.content == b"seeded on disk", resp.content)
    expect(meta.path_display == "/Seed/Read Me.txt", meta.path_display)


@check
def check_user_and_app():
    expect(dbx.check_user("ping").result == "ping", "check/user echoes")
    expect(app.check_app("pong").result == "pong", "check/app echoes")


@check
def create_folder_upload_and_metadata():
    f = dbx.files_create_folder_v2("/SDK").metadata
    expect(isinstance(f, FolderMetadata) and f.name == "SDK", f)
    m = dbx.files_upload(b"hello world", "/SDK/hello.txt", mode=WriteMode.overwrite)
    expect(isinstance(m, FileMetadata), m)
    expect(m.content_hash == HELLO_HASH, m.content_hash)
    expect(len(m.rev) >= 9, m.rev)
    got = dbx.files_get_metadata("/sdk/HELLO.txt")
    expect(isinstance(got, FileMetadata) and got.rev == m.rev, got)
    expect(got.path_display == "/SDK/hello.txt", got.path_display)
    folder = dbx.files_get_metadata("/sdk")
    expect(isinstance(folder, FolderMetadata), folder)


@check
def upload_conflict_and_autorename():
    try:
        dbx.files_upload(b"other", "/SDK/hello.txt", mode=WriteMode.add)
        raise AssertionError("expected a conflict")
    except exceptions.ApiError as e:
        expect(e.error.is_path() and e.error.get_path().reason.is_conflict(), e.error)
    r = dbx.files_upload(b"other", "/SDK/hello.txt", mode=WriteMode.add, autorename=True)
    expect(r.name == "hello (1).txt", r.name)


@check
def unicode_names():
    name = "/SDK/Caf\u00e9 \U0001F600.txt"
    m = dbx.files_upload(b"uni", name)
    expect(m.path_display == name, m.path_display)
    meta, resp = dbx.files_download(name.upper())
    expect(resp.content == b"uni" and meta.name == "Caf\u00e9 \U0001F600.txt", meta.name)


@check
def list_folder_paging_and_continue():
    res = dbx.files_list_folder("/SDK", recursive=True, limit=1)
    entries = list(res.entries)
    while res.has_more:
        res = dbx.files_list_folder_continue(res.cursor)
        entries += res.entries
    names = sorted(e.name for e in entries)
    expect("hello.txt" in names and "SDK" in names, names)
    cursor = res.cursor
    dbx.files_upload(b"delta", "/SDK/delta.txt")
    dbx.files_delete_v2("/SDK/hello (1).txt")
    # The cursor keeps limit=1, so the delta comes in pages too.
    delta = dbx.files_list_folder_continue(cursor)
    changed = list(delta.entries)
    while delta.has_more:
        delta = dbx.files_list_folder_continue(delta.cursor)
        changed += delta.entries
    expect(len(changed) == 2, changed)
    kinds = {(type(e).__name__, e.name) for e in changed}
    expect(("FileMetadata", "delta.txt") in kinds, kinds)
    expect(("DeletedMetadata", "hello (1).txt") in kinds, kinds)


@check
def list_folder_include_deleted():
    res = dbx.files_list_folder("/SDK", include_deleted=True)
    expect(any(isinstance(e, DeletedMetadata) for e in res.entries), res.entries)
    gone = dbx.files_get_metadata("/SDK/hello (1).txt", include_deleted=True)
    expect(isinstance(gone, DeletedMetadata), gone)


@check
def latest_cursor_and_longpoll():
    cursor = dbx.files_list_folder_get_latest_cursor("/SDK").cursor
    dbx.files_upload(b"poll", "/SDK/poll.txt")
    # The longpoll goes to the notify host with no Authorization header.
    lp = dbx.files_list_folder_longpoll(cursor, timeout=30)
    expect(lp.changes is True, lp)
    delta = dbx.files_list_folder_continue(cursor)
    expect([e.name for e in delta.entries] == ["poll.txt"], delta.entries)


@check
def download_whole_and_ranges():
    meta, resp = dbx.files_download("/SDK/hello.txt")
    expect(resp.content == b"hello world", resp.content)
    expect(meta.size == 11, meta.size)
    _, part = dbx.files_download("/SDK/hello.txt", extra_headers={"Range": "bytes=0-4"})
    expect(part.status_code == 206 and part.content == b"hello", (part.status_code, part.content))
    expect(part.headers["Content-Range"] == "bytes 0-4/11", part.headers.get("Content-Range"))
    _, tail = dbx.files_download("/SDK/hello.txt", extra_headers={"Range": "bytes=-5"})
    expect(tail.content == b"world", tail.content)


@check
def get_metadata_errors():
    try:
        dbx.files_get_metadata("/SDK/missing.txt")
        raise AssertionError("expected not_found")
    except exceptions.ApiError as e:
        expect(e.error.is_path() and e.error.get_path().is_not_found(), e.error)
    try:
        dbx.files_get_metadata("/")
        raise AssertionError("expected a 400")
    except exceptions.BadInputError as e:
        expect("root folder" in e.message, e.message)


@check
def thumbnails_by_path():
    dbx.files_upload(png(40, 20), "/SDK/img.png")
    for fmt, magic in ((ThumbnailFormat.png, b"\x89PNG"), (ThumbnailFormat.jpeg, b"\xff\xd8"), (ThumbnailFormat.webp, b"RIFF")):
        res, resp = dbx.files_get_thumbnail_v2(
            PathOrLink.path("/SDK/img.png"), format=fmt, size=ThumbnailSize.w32h32, mode=ThumbnailMode.bestfit
        )
        expect(resp.content.startswith(magic), resp.content[:8])
        expect(res.file_metadata.name == "img.png", res)
    try:
        dbx.files_get_thumbnail_v2(PathOrLink.path("/SDK/hello.txt"))
        raise AssertionError("expected unsupported_extension")
    except exceptions.ApiError as e:
        expect(e.error.is_unsupported_extension(), e.error)


@check
def temporary_link():
    res = dbx.files_get_temporary_link("/SDK/hello.txt")
    expect(res.metadata.name == "hello.txt", res.metadata)
    body = requests.get(res.link, verify=CA, timeout=10)
    expect(body.status_code == 200 and body.content == b"hello world", body.status_code)


@check
def move_and_delete():
    moved = dbx.files_move_v2("/SDK/poll.txt", "/SDK/Moved.txt").metadata
    expect(isinstance(moved, FileMetadata) and moved.name == "Moved.txt", moved)
    deleted = dbx.files_delete_v2("/SDK/Moved.txt").metadata
    expect(isinstance(deleted, FileMetadata), deleted)
    try:
        dbx.files_move_v2("/SDK/nope", "/SDK/x")
        raise AssertionError("expected from_lookup")
    except exceptions.ApiError as e:
        expect(e.error.is_from_lookup(), e.error)


@check
def shared_links_with_user_and_app_auth():
    link = dbx.sharing_create_shared_link_with_settings("/SDK/hello.txt")
    expect(isinstance(link, FileLinkMetadata), link)
    expect(link.path_lower == "/sdk/hello.txt", link.path_lower)
    try:
        dbx.sharing_create_shared_link_with_settings("/SDK/hello.txt")
        raise AssertionError("expected shared_link_already_exists")
    except exceptions.ApiError as e:
        expect(e.error.is_shared_link_already_exists(), e.error)
    as_app = app.sharing_get_shared_link_metadata(link.url)
    expect(isinstance(as_app, FileLinkMetadata) and as_app.path_lower is None, as_app)
    meta, resp = app.sharing_get_shared_link_file(link.url)
    expect(resp.content == b"hello world" and isinstance(meta, FileLinkMetadata), meta)
    listed = dbx.sharing_list_shared_links(path="/SDK/hello.txt").links
    expect([l.url for l in listed] == [link.url], listed)
    try:
        app.sharing_get_shared_link_metadata(link.url.replace("rlkey=", "rlkey=x"))
        raise AssertionError("expected shared_link_not_found")
    except exceptions.ApiError as e:
        expect(e.error.is_shared_link_not_found(), e.error)


@check
def folder_link_listing_and_thumbnail_with_app_auth():
    folder = dbx.sharing_create_shared_link_with_settings("/SDK")
    expect(isinstance(folder, FolderLinkMetadata), folder)
    res = app.files_list_folder("", shared_link=SharedLink(url=folder.url))
    names = {e.name for e in res.entries}
    expect("img.png" in names, names)
    expect(all(e.path_lower is None for e in res.entries), "no paths for link visitors")
    cont = app.files_list_folder_continue(res.cursor)
    expect(cont.entries == [], cont.entries)
    meta, resp = app.sharing_get_shared_link_file(folder.url, path="/img.png")
    expect(resp.content.startswith(b"\x89PNG"), meta)
    res, resp = app.files_get_thumbnail_v2(
        PathOrLink.link(SharedLinkFileInfo(url=folder.url, path="/img.png")), format=ThumbnailFormat.png
    )
    expect(resp.content.startswith(b"\x89PNG") and res.link_metadata.url == folder.url, res)
    try:
        app.sharing_get_shared_link_file(folder.url)
        raise AssertionError("expected shared_link_is_directory")
    except exceptions.ApiError as e:
        expect(e.error.is_shared_link_is_directory(), e.error)


def authorize(flow):
    url = flow.start()
    page = requests.get(url, verify=CA, timeout=10)
    page.raise_for_status()
    code = re.search(r"code into your app: ([A-Za-z0-9_-]+)", page.text)
    expect(code, page.text)
    return flow.finish(code.group(1))


@check
def oauth_pkce_offline_and_refresh():
    flow = dropbox.DropboxOAuth2FlowNoRedirect(APP_KEY, use_pkce=True, token_access_type="offline")
    result = authorize(flow)
    expect(result.refresh_token and result.access_token.startswith("sl."), result)
    expect(len(result.account_id) == 40, result.account_id)
    fresh = dropbox.Dropbox(oauth2_refresh_token=result.refresh_token, app_key=APP_KEY)
    fresh.check_and_refresh_access_token()
    expect(fresh.users_get_current_account().account_id == result.account_id, "same account")


@check
def oauth_secret_flow_expiry_and_revoke():
    flow = dropbox.DropboxOAuth2FlowNoRedirect(APP_KEY, APP_SECRET, token_access_type="offline")
    result = authorize(flow)
    user = dropbox.Dropbox(result.access_token)
    expect(user.users_get_current_account().account_id == result.account_id, "token works")
    admin("POST", "expire_tokens", {"token": result.access_token})
    try:
        user.users_get_current_account()
        raise AssertionError("expected expired_access_token")
    except exceptions.AuthError as e:
        expect(e.error.is_expired_access_token(), e.error)
    refreshed = dropbox.Dropbox(oauth2_refresh_token=result.refresh_token, app_key=APP_KEY, app_secret=APP_SECRET)
    refreshed.check_and_refresh_access_token()
    refreshed.auth_token_revoke()
    try:
        refreshed.users_get_current_account()
        raise AssertionError("expected invalid_access_token after revoke")
    except exceptions.AuthError as e:
        expect(e.error.is_invalid_access_token(), e.error)


@check
def bad_token_is_auth_error():
    try:
        dropbox.Dropbox("not-a-token").users_get_current_account()
        raise AssertionError("expected AuthError")
    except exceptions.AuthError as e:
        expect(e.error.is_invalid_access_token(), e.error)


@check
def rate_limit_and_server_errors():
    admin("PUT", "faults", {"rules": [{"route": "users/get_current_account", "kind": "429:3", "times": 1}]})
    try:
        dbx.users_get_current_account()
        raise AssertionError("expected RateLimitError")
    except exceptions.RateLimitError as e:
        expect(e.backoff == 3 and e.error.reason.is_too_many_requests(), (e.backoff, e.error))
    admin("PUT", "faults", {"rules": [{"route": "files/*", "kind": "503", "times": 1}]})
    try:
        dbx.files_get_metadata("/SDK")
        raise AssertionError("expected InternalServerError")
    except exceptions.InternalServerError as e:
        expect(e.status_code == 503, e.status_code)
    admin("DELETE", "faults")
    expect(isinstance(dbx.files_get_metadata("/SDK"), FolderMetadata), "recovered")


failed = sum(1 for _, e in results if e)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
