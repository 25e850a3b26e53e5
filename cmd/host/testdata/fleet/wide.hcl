# 30 modules in four layers for a master and three workers: the results
# flow between instances through etcd (every layer reads the one before),
# and each module sleeps so that every member gets some of the work.
# The outputs never mention the instance, so the report of a fleet run
# equals a single-machine run's except for timings and where modules ran.

pipeline {
  name = "fleet-wide"
}

distributed {
  heartbeat_interval = "500ms"
  heartbeat_timeout  = "5s"
  capability_timeout = "1m"
}

module "shell" "source" {
  script      = "echo '{\"sha\": \"c0ffee\", \"parts\": 10}'"
  stdout_json = true
}

module "shell" "build" {
  matrix {
    part = ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9"]
  }
  script      = "sleep 0.4; echo '{\"object\": \"${matrix.part}-${module.source.value.json.sha}.o\"}'"
  stdout_json = true
}

module "shell" "test" {
  matrix {
    part = ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9"]
  }
  command = ["sh", "-c", "sleep 0.4; echo tested ${module.build[matrix.part].value.json.object}"]
}

module "shell" "check" {
  matrix {
    kind = ["vet", "lint", "fmt", "license", "deps", "size", "docs", "api"]
  }
  command = ["sh", "-c", "sleep 0.3; echo ${matrix.kind} ok for ${length(module.test)} tests"]
}

module "shell" "release" {
  command = ["echo", "release ${module.source.value.json.sha}: ${join(",", [for k, b in module.build : b.value.json.object])} after ${length(module.check)} checks"]
}
