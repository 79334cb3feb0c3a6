"""The one list of transcript formats: what clients send and the server stores (RESULT_FORMATS,
shared with the client), plus Markdown, made on request from the JSON or the VTT."""

from __future__ import annotations

from stt_common.formats import RESULT_FORMATS

FORMATS = (*RESULT_FORMATS, "md")
MEDIA_TYPES = {
    "txt": "text/plain",
    "vtt": "text/vtt",
    "srt": "application/x-subrip",
    "json": "application/json",
    "md": "text/markdown",
}
FORMAT_PATTERN = f"^({'|'.join(FORMATS)})$"
