#!/usr/bin/env bash
# A pool of local PersistentVolumes (the cluster has no dynamic provisioner).
exec "$(dirname "$0")/../volumes" 4
