"""Flower ClientApp: the site agent's adapter to Flower's Message API.

Decodes a ``genofed.v1`` request from the message, hands it to
:func:`genofed.site_agent.release.handle_request` and encodes the reply. The
site directory comes from the SuperNode's node config (``site-dir``); the
simulation runner binds each virtual node to its directory itself and calls
:func:`answer`. ``TRAIN`` messages are the four stages of a SecAgg+ round
(``exact`` and ``distributed-dp`` studies), answered by
:func:`genofed.site_agent.secure_release.answer_secure`.
"""

from __future__ import annotations

from pathlib import Path

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from genofed.common.errors import IntegrityError
from genofed.common.messages import Reply, Status
from genofed.common.reasons import FAILED, INTEGRITY
from genofed.common.wire.records import reply_to_recorddict, request_from_recorddict
from genofed.site_agent.release import handle_request
from genofed.site_agent.secure_release import answer_secure

#: Node config key naming the site directory (``flower-supernode --node-config``).
SITE_DIR_KEY = "site-dir"

app = ClientApp()


def site_dir_from_context(context: Context) -> Path:
    """The site directory this node serves, from its node config."""
    if SITE_DIR_KEY not in context.node_config:
        raise RuntimeError(
            "this node has no site directory: start it with "
            f"--node-config '{SITE_DIR_KEY}=\"/path\"'"
        )
    return Path(str(context.node_config[SITE_DIR_KEY]))


def answer(msg: Message, site_dir: Path) -> Message:
    """Answer one GenoFed request message for the site in ``site_dir``."""
    return _answer(msg, site_dir)[0]


def _answer(msg: Message, site_dir: Path) -> tuple[Message, Reply]:
    try:
        request, inputs = request_from_recorddict(msg.content)
    except IntegrityError:
        reply = Reply(status=Status.REFUSED, reason_code=INTEGRITY, message="malformed request")
        return Message(reply_to_recorddict(reply, {}), reply_to=msg), reply
    reply, arrays = handle_request(site_dir, request, inputs)
    return Message(reply_to_recorddict(reply, arrays), reply_to=msg), reply


def outcome_line(reply: Reply) -> str:
    """The one line the ClientApp prints about its reply; ``genofed-site up`` shows it.

    ``genofed-reply: ok``, or ``genofed-reply: refused CODE message`` (``error``
    for a reply the site could not compute).
    """
    if reply.status == Status.OK:
        return "genofed-reply: ok"
    status = "refused" if reply.status == Status.REFUSED else "error"
    message = " ".join(reply.message.split())[:300]
    return f"genofed-reply: {status} {reply.reason_code or FAILED} {message}".rstrip()


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Answer one GenoFed request (deployment: one SuperNode per site)."""
    out, reply = _answer(msg, site_dir_from_context(context))
    print(outcome_line(reply), flush=True)  # the site console's "refused (CODE)" line
    return out


@app.train()
def train(msg: Message, context: Context) -> Message:
    """One SecAgg+ stage of a secure-sum round (``exact``, ``distributed-dp``)."""
    return answer_secure(msg, context, site_dir_from_context(context))
