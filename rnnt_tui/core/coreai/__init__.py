"""Core AI (Apple's successor to Core ML): conversion of the transducer's components to `.aimodel` assets with
`coreai-torch`, the assets themselves (reading, checking, matching a user's folder), running them with Apple's Core
AI runtime (`coreai-core`: the bundled runtime on Linux and macOS 26, the OS framework on macOS 27+), and Apple's
debugging tools for where a conversion drifts. Nothing here imports coreai, coreai_torch or torch at import time.
"""
