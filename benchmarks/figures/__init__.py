"""Figure groups, one module each; ``run.py`` imports only the groups it runs.

To add a group: write ``benchmarks/figures/<name>.py`` exposing
``GROUP = harness.Group(...)`` and add ``<name>`` here.  Keep the figure names
of DESIGN.md ("Performance harness"), so that JSON files stay comparable.
"""

GROUPS: tuple[str, ...] = (
    "config",  # config_parse_s, config_small_s
    "network",  # net_setup_ms, dns_qps
    "lifecycle",  # up_n1_s .. up_n50_s, up_chain10_s, up_noop_n10_s, down_n50_s
    "runtime",  # start_exit_ms, mem_per_container_kib
    "images",  # pull_s, pull_peak_rss_mib, rebuild_nochange_s
)
