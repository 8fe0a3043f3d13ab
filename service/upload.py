"""Reading an uploaded photo into memory, and nowhere else.

Starlette spools uploads over 1 MB to a temporary file; a selfie is biometric data and must not
touch the disk, so the body is read here with a size limit and parsed by a parser whose spool
never rolls over. The format is judged by the bytes, never by the file name or the declared
content type.
"""

from __future__ import annotations

from typing import Optional

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser


class UploadRejected(Exception):
    def __init__(self, status: int, error: str, detail: str):
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def sniff_image(data: bytes) -> str:
    """'jpeg', 'png' or 'webp' from the magic bytes; raises UploadRejected otherwise."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis", b"avif"):
        raise UploadRejected(415, "unsupported_image", "photo: HEIC/HEIF/AVIF photos are not supported; send JPEG, PNG or WebP (phones can export JPEG)")
    raise UploadRejected(415, "unsupported_image", "photo: the file is not a JPEG, PNG or WebP image (judged by its content, not its name)")


async def read_photo(request: Request, max_bytes: int) -> tuple[bytes, dict[str, str]]:
    """The bytes of the multipart field `photo` and the other (text) fields, all in memory."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise UploadRejected(413, "too_large", f"photo: the upload is {int(declared):,} bytes; the limit is {max_bytes:,}")
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise UploadRejected(415, "invalid_request", "send the photo as multipart/form-data with a file field named 'photo'")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise UploadRejected(413, "too_large", f"photo: the upload exceeds the limit of {max_bytes:,} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)

    async def replay():
        yield body

    parser = _InMemoryParser(request.headers, replay(), max_files=1, max_fields=10, max_part_size=64 * 1024)
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise UploadRejected(400, "invalid_request", f"the multipart body could not be read: {e}") from e
    try:
        photo: Optional[UploadFile] = None
        fields: dict[str, str] = {}
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name == "photo":
                    photo = value
            else:
                fields[name] = value
        if photo is None:
            raise UploadRejected(422, "invalid_request", "photo: a file field named 'photo' is required")
        data = await photo.read()
    finally:
        await form.close()
    if not data:
        raise UploadRejected(422, "invalid_request", "photo: the file is empty")
    sniff_image(data)
    return data, fields


class _InMemoryParser(MultiPartParser):
    # Larger than any accepted upload, so the spooled file never rolls over to disk.
    spool_max_size = 1 << 40
