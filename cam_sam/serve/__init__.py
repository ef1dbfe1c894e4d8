"""Serving: the models loaded once for many requests (:mod:`.service`), the web page and its API
(:mod:`.app`), and the load test of that API (:mod:`.loadtest`)."""
