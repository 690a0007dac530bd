"""Local web app (`dynface serve`): upload photos, restore them, compare with a before/after slider.

`jobs` holds the server settings and runs one restoration job with the library (no Gradio);
`examples` degrades the shipped example faces at start-up (no Gradio); `page` builds the Gradio page around them; the `dynface serve` command is `cli/serve.py`. Gradio is the
optional extra `web` (`pip install -e ".[web]"`); only `page` (and `cli.serve.cmd_serve`, through it) imports it.
"""
