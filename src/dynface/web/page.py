"""The Gradio page of `dynface serve`: upload, settings, progress, before/after sliders, gallery, downloads.

`RestorePage.restore` is the event handler (a generator: it yields the outputs once, Gradio copies
them into its own cache, then the job folder is removed). `RestorePage.build` lays the page out.
Everything is local: analytics off, no share link, the theme's fonts are served by the app itself.
"""
from __future__ import annotations

import logging
import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read by gradio at import: no phoning home

import shutil
import tempfile
from pathlib import Path

import gradio as gr

from dynface.pipeline import Restorer, RestoreOptions, method_steps
from dynface.web.jobs import (FIDELITY_SUPPORTED, INPUT_KINDS, METHODS, JobError, JobResult, JobSettings, ServerConfig,
                   run_job)

log = logging.getLogger("dynface.web")
STATUS_ID = "dynface-status"


def _number(value, what: str, kind=float):
    import math

    try:
        v = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise JobError(f"{what} must be a number, got {value!r}") from None
    if isinstance(v, float) and not math.isfinite(v):
        raise JobError(f"{what} must be a finite number, got {value!r}")
    return v


def status_markdown(result: JobResult | None, error: str | None = None) -> str:
    """What the status box says: a summary, then one line per problem."""
    if error:
        return f"**Error:** {error}"
    lines = []
    n_ok = len(result.photos)
    n_all = n_ok + len([m for m in result.messages if not m.startswith("the job ran past")])
    if n_ok:
        lines.append(f"Restored {n_ok} of {max(n_all, n_ok)} photo(s) in {result.seconds:.1f} s.")
    for m in result.messages:
        lines.append(f"- **Error:** {m}")
    for m in result.notes:
        lines.append(f"- note: {m}")
    return "\n".join(lines) or "Nothing restored."


class RestorePage:
    """The page and its handler around one loaded model set; one job runs at a time."""

    def __init__(self, restorer: Restorer, base: RestoreOptions, cfg: ServerConfig = ServerConfig(),
                 work_root: str | os.PathLike | None = None):
        self.restorer, self.base, self.cfg = restorer, base, cfg
        self.work_root = Path(work_root) if work_root else None

    def default_steps(self, method: str) -> int:
        """The Steps slider's value for a page method label: that method's default, within the slider."""
        return min(method_steps(self.restorer.models, METHODS.get(method, "dynface")), self.cfg.max_steps)

    # ------------------------------------------------------------------ handler
    def settings_from_page(self, input_kind, method, default_fidelity, fidelity, steps, seed) -> JobSettings:
        if method not in METHODS:
            raise JobError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
        if input_kind not in INPUT_KINDS:
            raise JobError(f"unknown input kind {input_kind!r}")
        fid = None if default_fidelity or not FIDELITY_SUPPORTED else _number(fidelity, "fidelity")
        steps_f, seed_f = _number(steps, "steps"), _number(seed, "seed")
        if steps_f != int(steps_f) or seed_f != int(seed_f):
            raise JobError("steps and seed must be whole numbers")
        return JobSettings(method=METHODS[method], aligned=INPUT_KINDS[input_kind], steps=int(steps_f),
                           seed=int(seed_f), fidelity=fid)

    def restore(self, files, input_kind, method, default_fidelity, fidelity, steps, seed, progress=gr.Progress()):
        """Event handler: yields (status, *sliders, gallery, final PNGs, zip) once, then removes the job folder."""
        job_dir = Path(tempfile.mkdtemp(prefix="dynface-web-job-", dir=self.work_root))
        try:
            try:
                settings = self.settings_from_page(input_kind, method, default_fidelity, fidelity, steps, seed)
                if isinstance(files, (str, os.PathLike)):
                    files = [files]
                result = run_job(list(files or []), settings, self.restorer, self.base, self.cfg, job_dir,
                                 report=lambda f, text: progress(f, desc=text))
            except JobError as e:
                yield self.outputs(None, str(e))
                return
            except Exception as e:  # noqa: BLE001 - the page shows one line, the log has the traceback
                log.exception("restore job failed")
                yield self.outputs(None, f"internal error ({type(e).__name__}); see the server log")
                return
            yield self.outputs(result)
        finally:
            shutil.rmtree(job_dir, ignore_errors=True)

    def outputs(self, result: JobResult | None, error: str | None = None) -> list:
        photos = result.photos if result else []
        sliders = [gr.update(value=(p.before, p.after), label=f"{p.name}: before | after", visible=True)
                   for p in photos]
        sliders += [gr.update(value=None, visible=False)] * (self.cfg.max_files - len(sliders))
        gallery = [(str(f), cap) for p in photos for f, cap in p.faces]
        finals = [str(p.final_png) for p in photos] or None
        zip_path = str(result.zip_path) if result and result.zip_path else None
        return [status_markdown(result, error), *sliders, gallery or None, finals, zip_path]

    # ------------------------------------------------------------------ layout
    def build(self) -> gr.Blocks:
        cfg = self.cfg
        with gr.Blocks(title="dynface: face restoration", analytics_enabled=False,
                       delete_cache=(max(60, cfg.cache_ttl_s // 4), cfg.cache_ttl_s)) as demo:
            gr.Markdown("## dynface: blind face restoration on the CPU\n"
                        f"Upload photos (at most {cfg.max_files}, {cfg.max_upload_mb:g} MB and "
                        f"{cfg.max_pixels / 1e6:.0f} MP each). One job runs at a time; others wait in a queue. "
                        f"Models: `{self.restorer.models.describe()}`")
            with gr.Row():
                with gr.Column(scale=1):
                    files = gr.File(label="Photos", file_count="multiple", elem_id="dynface-upload")
                    kind = gr.Radio(list(INPUT_KINDS), value=next(iter(INPUT_KINDS)), label="Input",
                                    elem_id="dynface-kind")
                    method = gr.Radio(list(METHODS), value=next(iter(METHODS)), label="Method",
                                      elem_id="dynface-method")
                    with gr.Row():
                        default_fid = gr.Checkbox(value=True, label="Method's default fidelity",
                                                  interactive=FIDELITY_SUPPORTED, elem_id="dynface-default-fidelity")
                        fidelity = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Fidelity (0 quality, 1 fidelity)",
                                             interactive=FIDELITY_SUPPORTED, elem_id="dynface-fidelity",
                                             info=None if FIDELITY_SUPPORTED else
                                             "not available: this dynface has no RestoreOptions.fidelity")
                    steps = gr.Slider(1, cfg.max_steps, value=self.default_steps(next(iter(METHODS))), step=1,
                                      label="Steps", info="set to the method's default when the method changes",
                                      elem_id="dynface-steps")
                    method.change(self.default_steps, method, steps)
                    seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", elem_id="dynface-seed")
                    run = gr.Button("Restore", variant="primary", elem_id="dynface-run")
                with gr.Column(scale=2):
                    status = gr.Markdown(elem_id=STATUS_ID)
                    sliders = [gr.ImageSlider(label=f"photo {i + 1}", visible=False, format="png", type="numpy",
                                              interactive=False, elem_id=f"dynface-slider-{i}",
                                              buttons=["fullscreen"])
                               for i in range(cfg.max_files)]
                    gallery = gr.Gallery(label="Restored faces", columns=6, height=200, object_fit="contain",
                                         preview=False, fit_columns=False, interactive=False, format="png",
                                         elem_id="dynface-faces")
                    with gr.Row():
                        finals = gr.File(label="Final images (PNG)", file_count="multiple", interactive=False,
                                         elem_id="dynface-finals")
                        zip_file = gr.File(label="All outputs (zip)", interactive=False, elem_id="dynface-zip")
            run.click(self.restore, [files, kind, method, default_fid, fidelity, steps, seed],
                      [status, *sliders, gallery, finals, zip_file], concurrency_limit=1,
                      show_progress_on=[status])
        demo.queue(default_concurrency_limit=1, max_size=cfg.queue_size)
        return demo

    def launch(self, demo: gr.Blocks | None = None, quiet: bool = False):
        """Serve on cfg.host:cfg.port; blocks until the server stops (Ctrl+C)."""
        demo = demo or self.build()
        return demo.launch(server_name=self.cfg.host, server_port=self.cfg.port, share=False, inbrowser=False,
                           max_file_size=self.cfg.max_upload_bytes, show_error=False, ssr_mode=False,
                           mcp_server=False, pwa=False, quiet=quiet, footer_links=[])
