"""The review desk: a small Flask app over the same store and functions as the CLI.

Pages (every one needs a login; see :mod:`reports.desk.auth`):

* ``/queue``: the flags, filtered (state, character, platform, days, score, text), sorted and
  keyset-paged (:mod:`reports.desk.queries`), with bulk verdicts on a selection;
* ``/detections/ID``: the best frame beside the matched reference, the sampled frames with
  their scores, the evidence in plain words (:mod:`reports.explain`), the video's facts, the
  review history, and the actions as forms: verdicts (:func:`index.review.set_review_state`,
  the same rules as ``charwatch review``), "always allow this account"
  (:func:`index.allowlist.add_allowed`), "add this frame as a negative / new reference"
  (:func:`index.registry.add_images`), the evidence bundle
  (:func:`reports.evidence.export_evidence`);
* ``/reports/``: the static reports written by ``charwatch report``.

Images are served only from paths the store holds (frames, references), resolved with
:func:`storage.blobs.data_file`; no request names a file. Every page works without JavaScript;
``static/desk.js`` adds keyboard shortcuts. Scraped text reaches pages only through Jinja2's
autoescaping, and a Content-Security-Policy allows only the desk's own script and style.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from flask import (
    Flask,
    Response,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    send_file,
    send_from_directory,
    session,
    url_for,
)
from werkzeug.exceptions import HTTPException

from charwatch import __version__
from charwatch.config import Config
from charwatch.platforms import display_name
from index.allowlist import AllowListError, add_allowed
from index.review import STATES, ReviewError, set_review_state, set_review_states
from reports.desk import queries
from reports.desk.auth import (
    CSRF_FIELD,
    CSRF_HEADER,
    LoginLimiter,
    load_secret_key,
    new_csrf_token,
    same_token,
    secret_key_path,
)
from reports.explain import clock, estimated_precision
from reports.html import safe_link
from storage.blobs import data_file
from storage.db import Store
from storage.models import Detection, Frame, Reference, ReportRun
from storage.users import authenticate, get_user

HERE = Path(__file__).parent
PUBLIC_ENDPOINTS = {"login", "static"}
IMAGE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
}
REPORT_TYPES = {".html": "text/html; charset=utf-8", ".csv": "text/csv; charset=utf-8"}
MAX_BULK = 500
VERDICT_WORDS = {
    "needs_review": "Needs review",
    "confirmed": "Confirm",
    "rejected": "Reject",
    "notice_sent": "Notice sent",
    "removed": "Removed",
}
STATE_WORDS = {
    "open": "open (new or needs review)",
    "all": "every state",
    "new": "new",
    "needs_review": "needs review",
    "confirmed": "confirmed",
    "rejected": "rejected",
    "notice_sent": "notice sent",
    "removed": "removed",
}
SHORTCUT_KEYS = {"confirmed": "c", "rejected": "r", "needs_review": "n"}
DESK_CSP = (
    "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# the static reports carry their own, stricter policy (their inline script by hash)
REPORT_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


def when(value: Any, seconds: bool = False) -> str:
    """A UTC time for people (empty for none)."""
    if not isinstance(value, dt.datetime):
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime(
        "%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC"
    )


def local_next(target: str | None) -> str | None:
    """``target`` when it is a path on this site (no scheme, host or backslash), else None."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


class Desk:
    """What the request handlers share: config, store, login limiter."""

    def __init__(self, cfg: Config, store: Store) -> None:
        self.cfg = cfg
        self.store = store
        self.limiter = LoginLimiter(cfg.serve.login_max_failures, cfg.serve.login_lockout_s)


def create_app(cfg: Config, store: Store | None = None) -> Flask:
    """The desk's WSGI app over ``store`` (default: the configured database)."""
    from pipeline.media import objects_for

    if store is None:
        from charwatch.jobs import open_store

        store = open_store(cfg)
    objects_for(cfg)  # frames kept in an object store are fetched on demand
    app = Flask(
        __name__,
        template_folder=str(HERE / "templates"),
        static_folder=str(HERE / "static"),
        static_url_path="/static",
    )
    app.config.update(
        SECRET_KEY=load_secret_key(secret_key_path(cfg)),
        SESSION_COOKIE_NAME="charwatch_desk",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(cfg.serve.secure_cookies),
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=float(cfg.serve.session_hours)),
        MAX_CONTENT_LENGTH=1 << 20,
        SEND_FILE_MAX_AGE_DEFAULT=300,
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.jinja_env.filters.update(when=when, clock=clock, platform_name=display_name)
    app.jinja_env.globals.update(
        version=__version__,
        verdict_words=VERDICT_WORDS,
        state_words=STATE_WORDS,
        shortcut_keys=SHORTCUT_KEYS,
        csrf_field=CSRF_FIELD,
        csrf_token=lambda: session.get(CSRF_FIELD, ""),
    )
    desk = Desk(cfg, store)
    app.extensions["charwatch_desk"] = desk
    _guards(app, desk)
    _pages(app, desk)
    _actions(app, desk)
    _files(app, desk)
    return app


# ---------------------------------------------------------------------------------------------
# login, sessions, CSRF, roles, headers


def _guards(app: Flask, desk: Desk) -> None:
    @app.before_request
    def guard() -> Any:
        if request.endpoint == "static":
            return None
        if CSRF_FIELD not in session:
            session[CSRF_FIELD] = new_csrf_token()
        user = None
        uid = session.get("uid")
        if uid is not None:
            user = get_user(desk.store, int(uid))
            if user is None or user.password_set_at != session.get("pwd_at"):
                session.clear()  # removed, or the password changed since this login
                session[CSRF_FIELD] = new_csrf_token()
                user = None
        g.user = user
        if request.method == "POST":
            given = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
            if not same_token(session.get(CSRF_FIELD), given):
                abort(403, "The form's security token is missing or out of date: reload the page.")
        if request.endpoint in PUBLIC_ENDPOINTS:
            return None
        if user is None:
            if request.method == "GET":
                return redirect(url_for("login", next=request.full_path.rstrip("?")))
            abort(401, "Log in first.")
        if request.method == "POST" and request.endpoint != "logout" and not user.can_change:
            abort(403, "Your account can read but not change anything (role: viewer).")
        return None

    @app.after_request
    def headers(resp: Response) -> Response:
        h = resp.headers
        if request.endpoint in ("report_file", "reports_index"):
            h["Content-Security-Policy"] = REPORT_CSP
        else:
            h.setdefault("Content-Security-Policy", DESK_CSP)
        h["X-Content-Type-Options"] = "nosniff"
        h["X-Frame-Options"] = "DENY"
        h["Referrer-Policy"] = "no-referrer"
        h["Cross-Origin-Opener-Policy"] = "same-origin"
        if request.endpoint != "static":
            h["Cache-Control"] = "no-store" if resp.mimetype == "text/html" else "private"
        return resp

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        if exc.code is None or exc.code < 400:  # routing redirects (/reports -> /reports/)
            return exc
        return (
            render_template("error.html", code=exc.code, title=exc.name, message=exc.description),
            exc.code or 500,
        )

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        target = local_next(request.values.get("next")) or url_for("queue")
        if request.method == "GET":
            if g.user is not None:
                return redirect(target)
            return render_template("login.html", next=target, error=None, name="")
        name = (request.form.get("username") or "").strip()[:128]
        password = request.form.get("password") or ""
        limit = desk.limiter.max_failures
        keys = [(f"name:{name.lower()}", limit), (f"addr:{request.remote_addr}", limit * 4)]
        wait = desk.limiter.blocked_for(keys)
        if wait > 0:
            minutes = max(1, round(wait / 60))
            error = f"Too many failed logins: try again in about {minutes} minute(s)."
            return render_template("login.html", next=target, error=error, name=name), 429
        user = authenticate(desk.store, name, password)
        if user is None:
            desk.limiter.failed([k for k, _ in keys])
            error = "Wrong name or password."
            return render_template("login.html", next=target, error=error, name=name), 401
        desk.limiter.succeeded(keys[0][0])
        session.clear()  # a fresh session (and token) after logging in
        session.permanent = True
        session["uid"] = user.id
        session["pwd_at"] = user.password_set_at
        session[CSRF_FIELD] = new_csrf_token()
        return redirect(target, 303)

    @app.post("/logout")
    def logout() -> Any:
        session.clear()
        return redirect(url_for("login"), 303)


# ---------------------------------------------------------------------------------------------
# pages


def _back_filter(desk: Desk, back: str | None) -> queries.QueueFilter:
    """The queue filter carried in a ``back`` query string (rebuilt, never echoed)."""
    args = dict(parse_qsl(back or "", keep_blank_values=False))
    return queries.QueueFilter.from_args(args, desk.cfg.serve.page_size)


def _queue_url(filters: queries.QueueFilter, **extra: Any) -> str:
    args = {**filters.to_args(), **{k: v for k, v in extra.items() if v is not None}}
    return url_for("queue") + ("?" + urlencode(args) if args else "")


def _pages(app: Flask, desk: Desk) -> None:
    @app.get("/")
    def home() -> Any:
        return redirect(url_for("queue"))

    @app.get("/queue")
    def queue() -> Any:
        filters = queries.QueueFilter.from_args(request.args, desk.cfg.serve.page_size)
        try:
            start = max(1, int(request.args.get("at") or 1))
        except ValueError:
            start = 1
        with desk.store.session() as s:
            page = queries.queue_page(
                s,
                filters,
                after=request.args.get("after"),
                before=request.args.get("before"),
                start=start,
            )
            options = queries.filter_options(s)
        back = urlencode(filters.to_args())
        newer = older = None
        if page.newer:
            newer = _queue_url(filters, before=page.newer, at=max(1, start - filters.per_page))
        if page.older:
            older = _queue_url(filters, after=page.older, at=start + len(page.rows))
        return render_template(
            "queue.html",
            page=page,
            f=filters,
            options=options,
            back=back,
            newer=newer,
            older=older,
            bulk_states=[s for s in STATES if s != "new"],
        )

    @app.get("/detections/<int:detection_id>")
    def detection(detection_id: int) -> Any:
        return _detection_page(desk, detection_id)


def _detection_page(
    desk: Desk, detection_id: int, *, error: str | None = None, status: int = 200
) -> Any:
    back = request.values.get("back") or ""
    filters = _back_filter(desk, back)
    with desk.store.session() as s:
        view = queries.detection_view(s, detection_id)
        if view is None:
            abort(404, f"There is no detection {detection_id}.")
        prev_id, next_id = queries.neighbours(s, filters, view.det)
        html = render_template(
            "detection.html",
            v=view,
            d=view.det,
            video=view.video,
            back=urlencode(filters.to_args()),
            queue_url=_queue_url(filters),
            prev_id=prev_id,
            next_id=next_id,
            error=error,
            link=safe_link(view.video.url),
            report=_report_link(desk, s, view.det),
            est_precision=estimated_precision(view.det.signals)[0],
        )
    return html, status


def _report_link(desk: Desk, session: Any, det: Detection) -> str | None:
    """The newest static report whose period holds this flag (at its card), else the reports'
    index page, else None."""
    from sqlalchemy import select

    folder = desk.cfg.reports_dir.resolve()
    runs = session.scalars(select(ReportRun).order_by(ReportRun.created_at.desc()).limit(50))
    for run in runs:
        html = Path(run.html_path)
        inside = (run.since is None or run.since <= det.detected_at) and (
            run.until is None or det.detected_at < run.until
        )
        if not inside or run.created_at < det.detected_at:
            continue
        if html.parent.resolve() == folder and html.is_file():
            return url_for("report_file", name=html.name) + f"#v-{det.video_id}"
    if (folder / "index.html").is_file():
        return url_for("reports_index")
    return None


# ---------------------------------------------------------------------------------------------
# actions (analysts)


def _to_detection(detection_id: int) -> Any:
    back = request.form.get("back") or ""
    target = url_for("detection", detection_id=detection_id)
    if back:
        target += "?" + urlencode({"back": back})
    return redirect(target, 303)


def _note() -> str | None:
    note = (request.form.get("note") or "").strip()
    return note[:2000] or None


def _actions(app: Flask, desk: Desk) -> None:
    @app.post("/detections/<int:detection_id>/review")
    def review(detection_id: int) -> Any:
        state = request.form.get("state") or ""
        try:
            change = set_review_state(
                desk.store, detection_id, state, _note(), reviewer=g.user.name
            )
        except ReviewError as exc:
            if str(exc).startswith("no detection"):
                abort(404, str(exc))
            return _detection_page(desk, detection_id, error=str(exc), status=409)
        flash(
            f"Detection {detection_id}: {STATE_WORDS.get(change.old_state, change.old_state)} → "
            f"{STATE_WORDS.get(change.new_state, change.new_state)}.",
            "ok",
        )
        return _to_detection(detection_id)

    @app.post("/queue/review")
    def bulk_review() -> Any:
        filters = _back_filter(desk, request.form.get("back"))
        target = _queue_url(filters)
        state = request.form.get("state") or ""
        ids = []
        for raw in request.form.getlist("ids")[: MAX_BULK + 1]:
            try:
                ids.append(int(raw))
            except ValueError:
                abort(400, f"not a detection id: {raw[:20]!r}")
        if not ids:
            flash("Select flags first (tick their boxes, or press x on a row).", "error")
            return redirect(target, 303)
        if len(ids) > MAX_BULK:
            abort(400, f"At most {MAX_BULK} flags at once.")
        if state not in STATES:
            abort(400, f"unknown review state {state!r}")
        done, refused = set_review_states(desk.store, ids, state, _note(), reviewer=g.user.name)
        if done:
            flash(f"{len(done)} flag(s) → {STATE_WORDS.get(state, state)}.", "ok")
        for exc in refused[:20]:
            flash(f"Refused: {exc}", "error")
        if len(refused) > 20:
            flash(f"… and {len(refused) - 20} more refused.", "error")
        return redirect(target, 303)

    @app.post("/detections/<int:detection_id>/allow")
    def allow(detection_id: int) -> Any:
        with desk.store.session() as s:
            det = s.get(Detection, detection_id)
            if det is None:
                abort(404, f"There is no detection {detection_id}.")
            platform, author, character = det.video.platform, det.video.author, det.character.name
            state = det.review_state or "new"
        if not author:
            return _detection_page(
                desk, detection_id, error="This video has no account name to allow.", status=409
            )
        scope = request.form.get("scope") or "character"
        note = _note() or f"allowed on the review desk by {g.user.name} (detection {detection_id})"
        try:
            row = add_allowed(
                desk.store,
                platform,
                author,
                character=character if scope == "character" else None,
                note=note,
            )
        except AllowListError as exc:
            return _detection_page(desk, detection_id, error=str(exc), status=409)
        flash(
            f"Allowed {display_name(platform)} @{row['author']} for {row['scope']} "
            f"(allow-list entry {row['id']}): their videos are no longer flagged"
            + (f" for {character}." if scope == "character" else "."),
            "ok",
        )
        if request.form.get("also_reject") and state in ("new", "needs_review", "confirmed"):
            try:
                set_review_state(
                    desk.store,
                    detection_id,
                    "rejected",
                    "licensed account (allow-listed)",
                    reviewer=g.user.name,
                )
                flash(f"Detection {detection_id} → rejected.", "ok")
            except ReviewError as exc:
                flash(str(exc), "error")
        return _to_detection(detection_id)

    @app.post("/detections/<int:detection_id>/reference")
    def add_reference(detection_id: int) -> Any:
        from index.registry import RegistryError, add_images

        kind = request.form.get("kind") or ""
        if kind not in ("negative", "positive"):
            abort(400, "kind must be negative or positive")
        try:
            frame_id = int(request.form.get("frame_id") or "")
        except ValueError:
            abort(400, "choose a frame")
        with desk.store.session() as s:
            det = s.get(Detection, detection_id)
            if det is None:
                abort(404, f"There is no detection {detection_id}.")
            frame = s.get(Frame, frame_id)
            if frame is None or frame.video_id != det.video_id:
                abort(400, "that frame is not one of this video's")
            name, t = det.character.name, frame.t
            stored = frame.image_path or frame.thumb_path
            known = {r.id for r in det.character.references}
        path = data_file(desk.cfg.data_dir, stored) if stored else None
        if path is None or not path.is_file():
            return _detection_page(
                desk, detection_id, error="That frame's image is no longer on disk.", status=409
            )
        label = f"frame {clock(t)} of detection {detection_id}"
        try:
            char = add_images(
                desk.cfg, desk.store, name, [path], negative=kind == "negative", label=label
            )
        except RegistryError as exc:
            return _detection_page(desk, detection_id, error=str(exc), status=409)
        new = [r for r in char.references if r.id not in known]
        what = (
            "negative reference (a look-alike that must not match)"
            if kind == "negative"
            else "new reference"
        )
        if new:
            flash(
                f"Added the frame at {clock(t)} as a {what} of {name} (reference {new[0].id}). "
                "Matching uses it from its next run.",
                "ok",
            )
        else:
            flash(f"The frame at {clock(t)} already is a reference of {name}.", "error")
        return _to_detection(detection_id)


# ---------------------------------------------------------------------------------------------
# files: images, evidence bundles, static reports


def _send_stored(desk: Desk, stored: str | None) -> Any:
    if not stored:
        abort(404, "no image kept")
    path = data_file(desk.cfg.data_dir, stored)
    mime = IMAGE_TYPES.get(path.suffix.lower())
    if mime is None or not path.is_file():
        abort(404, "image not on disk")
    return send_file(path, mimetype=mime, max_age=300, conditional=True)


def _files(app: Flask, desk: Desk) -> None:
    @app.get("/media/frame/<int:frame_id>")
    def frame_image(frame_id: int) -> Any:
        with desk.store.session() as s:
            f = s.get(Frame, frame_id)
            if f is None:
                abort(404, "no such frame")
            thumb, full = f.thumb_path, f.image_path
        small = request.args.get("size") == "thumb"
        return _send_stored(desk, (thumb or full) if small else (full or thumb))

    @app.get("/media/reference/<int:reference_id>")
    def reference_image(reference_id: int) -> Any:
        with desk.store.session() as s:
            ref = s.get(Reference, reference_id)
            path = ref.path if ref is not None else None
        return _send_stored(desk, path)

    @app.get("/media/best/<int:detection_id>")
    def best_image(detection_id: int) -> Any:
        with desk.store.session() as s:
            det = s.get(Detection, detection_id)
            if det is None:
                abort(404, "no such detection")
            stored = det.best_frame_thumb
            if not stored:
                frames = [f for f in det.video.frames if f.thumb_path or f.image_path]
                t = det.best_frame_t or 0.0
                if frames:
                    near = min(frames, key=lambda f: abs(f.t - t))
                    stored = near.thumb_path or near.image_path
        return _send_stored(desk, stored)

    @app.get("/detections/<int:detection_id>/evidence.zip")
    def evidence(detection_id: int) -> Any:
        from reports.evidence import UnknownDetectionError, export_evidence

        tmp = Path(tempfile.mkdtemp(prefix="charwatch-desk-evidence-"))
        try:
            path = export_evidence(desk.cfg, desk.store, detection_id, tmp, zip=True)
        except UnknownDetectionError:
            shutil.rmtree(tmp, ignore_errors=True)
            abort(404, f"There is no detection {detection_id}.")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        # the open file outlives its folder: nothing is left behind whether or not the server
        # closes the response (a file sent through wsgi.file_wrapper skips call_on_close)
        data = path.open("rb")
        shutil.rmtree(tmp, ignore_errors=True)
        return send_file(
            data, mimetype="application/zip", as_attachment=True, download_name=path.name
        )

    @app.get("/reports/")
    def reports_index() -> Any:
        if (desk.cfg.reports_dir / "index.html").is_file():
            return report_file("index.html")
        message = "Run `charwatch report` to write one."
        return render_template("error.html", code=404, title="No reports yet", message=message), 404

    @app.get("/reports/<name>")
    def report_file(name: str) -> Any:
        mime = REPORT_TYPES.get(Path(name).suffix.lower())
        if mime is None:
            abort(404, "not a report file")
        return send_from_directory(
            desk.cfg.reports_dir.resolve(), name, mimetype=mime, max_age=0, as_attachment=False
        )
