"""Index and detection: the character registry, the signals, the reference index, matching.

* :mod:`index.registry`: characters, aliases, prompts and reference images;
* :mod:`index.signals`: one class per signal (PDQ copy, image embedding, text prompt,
  caption, provenance) behind one interface;
* :mod:`index.refindex`: the FAISS reference index, saved atomically under
  ``<data_dir>/indexes/`` per embedder;
* :mod:`index.matcher`: ``detect_pending`` claims ``embedded`` videos, fuses the signals into
  :class:`storage.models.Detection` rows and moves the videos to ``matched``.
"""
