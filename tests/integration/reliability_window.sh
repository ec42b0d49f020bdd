#!/usr/bin/env bash
# The reliability test with a pipelining destination (window: 8): a SIGKILL
# between a window's send and its ACKs must lose nothing either.
export RELIABILITY_WINDOW=8
exec bash "$(dirname "$0")/reliability.sh"
