"""Engines: the ways a layer's recurrence can run (see ``lstmkit.engines.contract``)."""
