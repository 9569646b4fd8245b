"""Offline bundles: `bundle` downloads once what the plans of one or many hosts need (make.py), `install --from`
installs from it alone (offline.py). The layout and the manifest are in manifest.py."""
