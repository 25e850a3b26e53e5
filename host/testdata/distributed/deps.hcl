# A result crosses members: producer runs on the alpha worker, consumer
# (an HCL reference) on beta, reader (sdk.Result) on gamma.
module "shell" "producer" {
  requires    = ["alpha"]
  script      = "echo '{\"sha\": \"abc123\", \"count\": 3}'"
  stdout_json = true
}

module "shell" "consumer" {
  requires = ["beta"]
  command  = ["echo", "sha=${module.producer.value.json.sha} count=${module.producer.value.json.count + 1}"]
}

module "testkit.dep" "reader" {
  requires   = ["gamma"]
  module     = "producer"
  depends_on = [module.producer]
}
