"""Per-stack networking: IPAM, bridges, veth pairs, netns, embedded DNS, published ports.

A library: no CLI knowledge, no printing, no knowledge of Compose. Imports
nothing else of pycompose.
"""
