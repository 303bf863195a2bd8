"""A fake short-video platform on 127.0.0.1 for tests and the demo.

It imitates the TikTok, YouTube and Instagram pages and APIs the crawler reads (see
``catalog`` for the content, ``server.FixtureServer`` to run it), draws its own original demo
characters (``characters``) and renders its videos with ffmpeg (``videos``).
"""
