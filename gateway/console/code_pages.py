"""A function's code tab: the inline editor for a one-file function, or a
.zip upload; and the zip the editor's one file becomes (creating a
function makes one the same way)."""

from __future__ import annotations

import base64
import io
import zipfile

import trio
from quart import Blueprint, request

from ..errors import LambdaError, invalid
from .page_kit import PageKit

INLINE_MAX = 256 * 1024  # the inline editor's one file

STARTER = """import json


def lambda_handler(event, context):
    print("event:", json.dumps(event))
    return {"statusCode": 200, "body": json.dumps({"hello": event})}
"""


async def code_from(form, files) -> bytes:
    """The zip a create or code form gives: the uploaded .zip, or the
    editor's one file zipped."""
    if form.get("source") == "zip":
        upload = files.get("zip")
        if upload is None or not upload.filename:
            raise invalid("Choose a .zip file to upload.")
        data = upload.read()
        if not data:
            raise invalid("The uploaded file is empty.")
        return data
    filename = (form.get("filename") or "lambda_function.py").strip()
    if not filename or "/" in filename or filename.startswith(".") or len(filename) > 128:
        raise invalid("Name the file like lambda_function.py (no directories).")
    code = form.get("code", "")
    if not code.strip():
        raise invalid("The editor is empty: write the function's code.")
    if len(code.encode()) > INLINE_MAX:
        raise invalid(f"The inline editor takes at most {INLINE_MAX // 1024} KiB; upload a .zip instead.")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(filename, date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = (0o644 | 0o100000) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, code.replace("\r\n", "\n"))
    return buf.getvalue()


def add_routes(bp: Blueprint, kit: PageKit) -> None:
    s = kit.s

    # -- code ------------------------------------------------------------------------------

    def inline_source(rec) -> tuple[str, str] | None:
        """The one file of a one-file function, for the editor."""
        try:
            with zipfile.ZipFile(s.service.codes.blob_path(rec.code_sha256_hex)) as zf:
                files = [i for i in zf.infolist() if not i.is_dir()]
                if len(files) != 1 or files[0].file_size > INLINE_MAX:
                    return None
                return files[0].filename, zf.read(files[0]).decode("utf-8")
        except (OSError, zipfile.BadZipFile, UnicodeDecodeError, KeyError):
            return None

    @bp.get("/functions/<name>/code")
    async def code_page(name: str):
        rec = kit.function(name)
        inline = await trio.to_thread.run_sync(inline_source, rec)
        return kit.page("function_code.html", fn=rec, tab="code", inline=inline, errors={})

    @bp.post("/functions/<name>/code")
    async def update_code(name: str):
        rec = kit.function(name)
        form = await request.form
        files = await request.files
        try:
            zip_bytes = await code_from(form, files)
            await s.service.update_code(name, {"ZipFile": base64.b64encode(zip_bytes).decode()})
        except LambdaError as exc:
            inline = await trio.to_thread.run_sync(inline_source, rec)
            return kit.page("function_code.html", 400, fn=rec, tab="code", inline=inline, errors={"code": exc.message})
        return kit.redirect(kit.fn_url(name, "code", "code"))
