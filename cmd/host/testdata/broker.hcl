pipeline {
  on_failure = "continue"
}

# A module reads a dependency's result through the plugin's Host service
# (sdk.Result) rather than through an HCL reference.
module "shell" "producer" {
  script      = "echo '{\"sha\": \"abc123\"}'"
  stdout_json = true
}

module "testkit.dep" "reader" {
  module     = "producer"
  depends_on = [module.producer]
}

module "testkit.dep" "sneaky" {
  module = "producer"
}
