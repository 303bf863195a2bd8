"""One spider per platform (``tiktok``, ``youtube``, ``instagram``) on a shared base."""
