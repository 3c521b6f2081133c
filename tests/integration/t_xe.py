#!/usr/bin/env python3
"""xe placeholder (replaced below)."""
