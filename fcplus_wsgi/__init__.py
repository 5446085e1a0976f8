"""fcplus_wsgi: sign users in with FranceConnect+, FranceConnect and ProConnect from any WSGI app.

Public surface: wrap an app with `FCPlusMiddleware` (or `make_middleware`, or the Paste
filter `egg:fcplus_wsgi#fcplus`), then read `identity(environ)` in the app.
"""

from .errors import Category, FlowError
from .events import EventBus, FlowEvent
from .identity import Identity, identity
from .links import login_url, logout_form, logout_url
from .middleware import FCPlusMiddleware, make_middleware
from .settings import ConfigError, Settings, parse_settings

__all__ = [
    "Category", "ConfigError", "EventBus", "FCPlusMiddleware", "FlowError", "FlowEvent", "Identity",
    "Settings", "identity", "login_url", "logout_form", "logout_url", "make_middleware", "parse_settings",
]
__version__ = "0.1.0"
