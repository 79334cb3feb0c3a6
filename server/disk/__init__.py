"""What is on disk: the library, results, uploads and parts' files. The only package that turns a
stored relative path into a real one (paths.safe_join), so none can lead outside its folder."""

from .paths import MEDIA_EXTENSIONS, UnsafePath

__all__ = ["MEDIA_EXTENSIONS", "UnsafePath"]
