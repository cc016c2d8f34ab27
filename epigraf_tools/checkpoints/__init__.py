"""Checkpoints: where a model comes from and how its files become a ``Generator``.

One concern, one package. Each module answers one question:

- ``loading``: which kind of spec is this (zoo name, folder, official pickle, Hub id), and load it;
- ``zoo``: the short names users type, with their Hub repos or official download locations;
- ``hub``: Hugging Face Hub downloads and uploads (cache, revisions, checksums, timeouts);
- ``share_download``, ``transfer_progress``: plain HTTP downloads of official files, and their bars;
- ``pickle_scan``, ``safe_pickle``: reading a pickle without running it (budgets, allow-list);
- ``official_pickle``, ``official_config``, ``omegaconf_state``: the official EpiGRAF training
  snapshot format, turned into our ``config.json`` + ``model.safetensors`` folder;
- ``model_card``: the README.md written beside converted or trained weights.

A second model family adds its own ``<family>_pickle``/``<family>_config`` modules here and reuses
the scan, the allow-list machinery, the zoo and the Hub code unchanged.
"""
