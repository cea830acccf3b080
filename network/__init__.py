"""Per-stack networking: IPAM, bridges, veth pairs, netns, embedded DNS, published ports.

A library: no CLI knowledge, no printing, no knowledge of Compose. Imports
nothing else of pycompose. Plain dataclass specs in, handles out.

Layering: ``names``, ``ipam``, ``dnswire``, ``hostsfiles`` and ``ports`` are pure
(or read /proc only); ``netns``, ``bridge``, ``links`` do netlink through
``_netlink`` (one self-contained step per worker-thread call, own
CapacityLimiter); ``firewall`` drives nftables through ``_nft``; ``dns`` is the
trio server; ``gc`` builds on all of them.

Modules (import them by name, e.g. ``from pycompose.network import ipam``):

* :mod:`.names` — host names (``pcbr…``, ``pcv…``) from a stable hash
* :mod:`.ipam` — pure subnet/address allocation over an explicit state
* :mod:`.netns` — namespace files under ``<root>/netns``
* :mod:`.bridge` — the bridge of a network
* :mod:`.links` — veth pairs into a container namespace
* :mod:`.firewall` — the instance's nftables table
* :mod:`.ports` — the port preflight and held reservations
* :mod:`.dns`, :mod:`.dnswire` — the embedded DNS server
* :mod:`.hostsfiles` — resolv.conf and /etc/hosts text
* :mod:`.gc` — garbage collection of leftovers
"""
