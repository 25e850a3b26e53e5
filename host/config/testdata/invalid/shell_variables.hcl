# An unknown name interpolated in a string is most likely the shell's:
# the error says how to pass ${ through. Elsewhere it says nothing of it.
module "shell" "script" {
  script = <<-EOT
    echo ${HOME}
  EOT
}

module "shell" "string" {
  command = ["echo", "${PATH}:bin"]
}

module "shell" "bare" {
  command = ["echo", USER]
}
