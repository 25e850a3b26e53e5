# modpipe's own pipeline: vet, build the host and the plugins, and run the
# test suites in parallel. `make run` builds the host and runs this file.

pipeline {
  name       = "modpipe"
  on_failure = "continue"
}

module "go.vet" "vet" {
  packages = ["./..."]
}

module "go.build" "build" {
  packages = ["./cmd/host", "./plugins/..."]
}

module "go.test" "test_config" {
  packages   = ["./host/config/...", "./host/graph/...", "./host/schedule/...", "./host/report/..."]
  depends_on = [module.build]
  category   = "test"
}

module "go.test" "test_plugins" {
  packages   = ["./sdk/...", "./host/pluginhost/...", "./plugins/..."]
  depends_on = [module.build]
  category   = "test"
}

module "go.test" "test_coordinator" {
  packages   = ["./coordinator/..."]
  depends_on = [module.build]
  category   = "test"
}

module "go.test" "test_e2e" {
  packages   = ["./cmd/..."]
  depends_on = [module.build]
  category   = "test"
}

# Reads the test modules' results: a module can consume what others produced.
module "shell" "summary" {
  command = ["echo", format("tests passed: %d (config %d, plugins %d, coordinator %d, end-to-end %d)",
    module.test_config.value.passed + module.test_plugins.value.passed + module.test_coordinator.value.passed + module.test_e2e.value.passed,
    module.test_config.value.passed, module.test_plugins.value.passed, module.test_coordinator.value.passed, module.test_e2e.value.passed)]
}
