#!/usr/bin/env bash
# The whole benchmark on the default config (extra arguments go to snakemake).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec snakemake --cores all --workflow-profile profiles/default "$@"
