pipeline {
  name = "python"
}

variable "dir" {
  type = string
}

# Go plugin (shell) -> Python plugin -> Go plugin: results flow both ways.
module "shell" "producer" {
  script      = "echo '{\"sha\": \"abc123\", \"count\": 3}'"
  stdout_json = true
}

module "shell" "files" {
  script = "mkdir -p ${var.dir}/src/deep && printf 'alpha\\n' > ${var.dir}/src/a.txt && printf 'beta\\n' > ${var.dir}/src/deep/b.txt"
}

# values come from an HCL reference to the Go module's result; ${from.*}
# comes from the same module's envelope, fetched by the Python plugin from
# the host through go-plugin's broker. $${ is HCL's escape for a literal ${.
module "template" "notes" {
  template    = "release $version of $${from.value.json.sha} ($${from.status}, $${from.type})"
  values      = { version = "1.${module.producer.value.json.count}" }
  from_module = "producer"
  output      = "${var.dir}/out/notes.txt"
}

module "template.checksum" "sums" {
  patterns   = ["src/**/*.txt"]
  dir        = var.dir
  depends_on = [module.files]
}

# The Python module's results, checked by a Go plugin: the rendered text
# and the file it wrote, and the digest against sha256sum's own listing.
module "shell" "consumer" {
  script = <<-SH
    test "$(cat ${var.dir}/out/notes.txt)" = '${module.notes.value.text}'
    cd ${var.dir}
    test "$(sha256sum src/a.txt src/deep/b.txt | sha256sum | cut -d' ' -f1)" = '${module.sums.value.digest}'
    echo "verified ${module.sums.value.count} files and ${module.notes.value.lines} line"
  SH
}
