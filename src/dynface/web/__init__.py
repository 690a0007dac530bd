"""Local web app (`dynface serve`): upload photos, restore them, compare with a before/after slider.

`jobs` holds the server settings and runs one restoration job with the library (no Gradio);
`page` builds the Gradio page around it; the `dynface serve` command is `cli/serve.py`. Gradio is the
optional extra `web` (`pip install -e ".[web]"`); only `page` (and `cli.serve.cmd_serve`, through it) imports it.
"""
