"""The pycompose engine: one trio daemon per state root that owns all state.

``daemon`` (process main: lock, store, API server, signals), ``http`` (HTTP/1.1
over a unix socket), ``store`` (SQLite state), ``bus`` (events), ``api``
(routes), ``projects`` (convergence of projects through the runtime).
"""
