//! Helpers shared by the cross-binary tests: free ports, temp dirs, spawning binaries and peers.
