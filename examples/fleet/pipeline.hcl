# A pipeline made to be run by a fleet: one master and a few workers that
# share its modules through etcd. `make fleet` runs it with a master and
# three workers on this machine (examples/fleet/run-fleet.sh); docs/fleet.md
# explains each part. It also runs unchanged on one machine:
#
#   bin/host run examples/fleet/pipeline.hcl
#
# but there `integration` is skipped (it requires the docker capability),
# and so are `package` and `publish`, which depend on it. Add
# `--capability docker` to run all of them.
#
# Every module only sleeps and echoes, so the run is quick and shows where
# each module ran (the summary's "RAN ON" column, and run.instance below).

pipeline {
  name = "fleet-example"
}

distributed {
  # Short heartbeats so a killed worker is noticed quickly in a demo; the
  # defaults (2s and 10s) suit real networks better.
  heartbeat_interval = "1s"
  heartbeat_timeout  = "5s"
  # A module that no live instance can run waits this long for one to join.
  capability_timeout = "2m"

  etcd {
    # Endpoints come from --etcd or MODPIPE_ETCD_ENDPOINTS (make fleet, the
    # GitHub Actions example) and would otherwise be listed here:
    #   endpoints = ["etcd-1.internal:2379", "etcd-2.internal:2379"]
    prefix = "/modpipe-example"
    # Credentials and TLS files from the environment, so no secret is in
    # the file; empty values leave authentication and TLS off.
    username  = env("ETCD_USERNAME")
    password  = env("ETCD_PASSWORD")
    ca_file   = env("ETCD_CA_FILE")
    cert_file = env("ETCD_CERT_FILE")
    key_file  = env("ETCD_KEY_FILE")
  }
}

# Pinned: runs on the master only (instance 0), e.g. because only the
# master's job holds the source checkout or the release credentials.
module "shell" "checkout" {
  pin_to_master = true
  script        = "echo '{\"sha\": \"3f2a9c1\", \"branch\": \"main\"}'"
  stdout_json   = true
}

# Any instance. Its result travels through etcd to the modules that read it,
# wherever they run.
module "shell" "generate" {
  command = ["sh", "-c", "sleep 0.3; echo generated for ${module.checkout.value.json.sha} on instance ${run.instance}"]
}

# A matrix: compile[linux], compile[windows], compile[macos]. Only a
# `target` axis is a capability requirement, so these three go to whichever
# instances are free (a cross-compile), in parallel.
module "shell" "compile" {
  matrix {
    os = ["linux", "windows", "macos"]
  }
  command = ["sh", "-c", "sleep 0.5; echo compiled ${module.checkout.value.json.sha} for ${matrix.os} on instance ${run.instance}"]
  depends_on = [module.generate]
}

# Unit tests in four shards, after the linux build only (an indexed
# reference waits for that one instance).
module "shell" "unit" {
  matrix {
    shard = ["1", "2", "3", "4"]
  }
  command = ["sh", "-c", "sleep 0.5; echo unit shard ${matrix.shard}/4 passed on instance ${run.instance}"]
  depends_on = [module.compile["linux"]]
}

module "shell" "lint" {
  command = ["sh", "-c", "sleep 0.4; echo lint clean on instance ${run.instance}"]
  depends_on = [module.checkout]
}

# Routing by capability: only an instance started with --capability docker
# (or MODPIPE_CAPABILITIES=docker, or capabilities = ["docker"] in its own
# distributed block) can claim it. Capabilities match case-insensitively.
module "shell" "integration" {
  requires   = ["docker"]
  command    = ["sh", "-c", "sleep 0.5; echo integration tests passed with docker on instance ${run.instance}"]
  depends_on = [module.compile["linux"]]
}

module "shell" "package" {
  script = "sleep 0.3; echo '{\"artifact\": \"app-3f2a9c1.tar.gz\", \"built_on\": ${run.instance}}'"
  stdout_json = true
  depends_on  = [module.compile, module.unit, module.lint, module.integration]
}

# Back on the master, with the package's result from whichever worker made it.
module "shell" "publish" {
  pin_to_master = true
  command       = ["echo", "published ${module.package.value.json.artifact} (built on instance ${module.package.value.json.built_on}, commit ${module.checkout.value.json.sha})"]
}
