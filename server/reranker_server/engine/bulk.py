"""Large requests tokenize on a thread of their own, at a lower CPU priority.

Tokenizing is the one stage whose cost a client sets alone, before any limit on tokens can be
checked: a body just under the byte limit takes a CPU for a good fraction of a second before
its 413. Requests whose text passes `EngineConfig.bulk_tokenize_chars` are tokenized one at a
time on a bulk thread niced `BULK_NICE` steps below the server's other threads (Linux: a
thread's nice value is its own), so on a busy CPU they use what the model and the small
requests leave, and on an idle one they run at full speed. Small requests keep the normal
encode threads, so they never queue behind a large one.
"""

from __future__ import annotations

import logging
import os
import threading

from reranker_server.contracts import RerankInput

BULK_NICE = 10  # CFS weight about a tenth of a nice-0 thread's when both want the CPU

log = logging.getLogger(__name__)


def request_chars(inp: RerankInput) -> int:
    """Characters of text a request asks to tokenize (query, instruction, documents)."""
    text = len(inp.query) + len(inp.instruction or "")
    return text + sum(len(d) for d in inp.documents if isinstance(d, str))


def lower_this_thread_priority(steps: int = BULK_NICE) -> None:
    """Bulk worker initializer: raise this thread's nice value by `steps` (where the OS allows
    per-thread priorities; elsewhere the thread only serialises the large requests)."""
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + steps))
    except (AttributeError, OSError) as exc:  # not Linux, or not permitted
        log.debug("bulk tokenizer thread keeps its priority: %r", exc)
