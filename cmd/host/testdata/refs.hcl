pipeline {
  name = "refs"
}

module "shell" "producer" {
  script      = "echo '{\"sha\": \"abc123\", \"count\": 3}'"
  stdout_json = true
}

module "shell" "consumer" {
  command = ["echo", "sha=${module.producer.value.json.sha} count=${module.producer.value.json.count + 1}"]
}
