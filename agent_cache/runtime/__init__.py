"""A small, generic actor runtime on anyio. Knows nothing of caching.

Internal to agent_cache: ``actors/`` and the public face build on it.
"""

from ._backend import Gate as Gate
from .actor import Actor as Actor
from .actor import ActorRef as ActorRef
from .errors import ActorStoppedError as ActorStoppedError
from .errors import MailboxFullError as MailboxFullError
from .messages import Message as Message
from .messages import Request as Request
from .supervisor import RestartIntensity as RestartIntensity
from .supervisor import Supervisor as Supervisor
from .system import ActorSystem as ActorSystem

__all__ = [
    "Actor",
    "ActorRef",
    "ActorStoppedError",
    "ActorSystem",
    "Gate",
    "MailboxFullError",
    "Message",
    "Request",
    "RestartIntensity",
    "Supervisor",
]
