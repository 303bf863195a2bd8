"""Index and detection: the character registry, the signals, the reference index, matching.

* :mod:`index.registry`: characters, aliases, prompts and reference images;
* :mod:`index.signals`: one file per signal (PDQ copy, geometric copy, image embedding,
  text prompt, caption, provenance) behind one interface, with the vector index and the
  background whitening they share; :mod:`index.geometric`: the geometry of copy verification;
* :mod:`index.refindex`: the FAISS reference index, saved atomically under
  ``<data_dir>/indexes/`` per embedder;
* :mod:`index.matcher`: ``detect_pending`` claims ``embedded`` videos, fuses the signals into
  :class:`storage.models.Detection` rows and moves the videos to ``matched``.
"""
