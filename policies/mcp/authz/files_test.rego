package mcp.authz_test

import data.mcp.authz

test_allow_file_operations_for_developer if {
	authz.decision.allow with input as file_op("read_file", "src/main.ts", "read")
	authz.decision.allow with input as file_op("write_file", "src/main.ts", "write")
	authz.decision.allow with input as file_op("delete_file", "build/out.js", "delete")
	authz.decision.allow with input as file_op("list_directory", ".", "list")
}

test_viewer_can_read_and_list_only if {
	authz.decision.allow with input as object.union(file_op("read_file", "a.txt", "read"), {"principal": viewer})
	authz.decision.allow with input as object.union(file_op("list_directory", "src", "list"), {"principal": viewer})
	w := authz.decision with input as object.union(file_op("write_file", "a.txt", "write"), {"principal": viewer})
	not w.allow
	has_reason(w, "do not allow the operation \"write_file\"")
	d := authz.decision with input as object.union(file_op("delete_file", "a.txt", "delete"), {"principal": viewer})
	not d.allow
}

test_deny_mode_not_matching_operation if {
	d := authz.decision with input as file_op("read_file", "a.txt", "write")
	not d.allow
	has_reason(d, "the read_file request needs a non-empty file path and the matching mode")
}

test_deny_empty_path if {
	d := authz.decision with input as file_op("read_file", "", "read")
	not d.allow
	has_reason(d, "needs a non-empty file path")
}

test_deny_dotdot if {
	d := authz.decision with input as file_op("read_file", "../secrets", "read")
	not d.allow
	has_reason(d, "must not contain \"..\"")
	e := authz.decision with input as file_op("read_file", "a/../../b", "read")
	not e.allow
	f := authz.decision with input as file_op("read_file", "a/..", "read")
	not f.allow
}

test_allow_dots_inside_names if {
	authz.decision.allow with input as file_op("read_file", "a..b/c...txt", "read")
}

test_deny_control_characters if {
	d := authz.decision with input as file_op("read_file", "a\nb", "read")
	not d.allow
	has_reason(d, "control characters")
}

test_deny_long_path if {
	d := authz.decision with input as file_op("read_file", "abcdef", "read")
		with data.gateway.files.max_path_bytes as 5
	not d.allow
	has_reason(d, "longer than 5 characters")
}

test_deny_git_hooks_write_and_delete if {
	w := authz.decision with input as file_op("write_file", ".git/hooks/pre-commit", "write")
	not w.allow
	has_reason(w, "changing git hooks is not allowed")
	d := authz.decision with input as file_op("delete_file", ".git/hooks/post-checkout", "delete")
	not d.allow
	n := authz.decision with input as file_op("write_file", "vendor/lib/.git/hooks/pre-push", "write")
	not n.allow
	h := authz.decision with input as file_op("delete_file", ".git/hooks", "delete")
	not h.allow
}

test_git_hooks_path_normalization_cannot_bypass if {
	not authz.decision.allow with input as file_op("write_file", "./.git/hooks/pre-commit", "write")
	not authz.decision.allow with input as file_op("write_file", "/.git//hooks/pre-commit", "write")
	not authz.decision.allow with input as file_op("write_file", ".git/./hooks/x", "write")
}

test_read_git_hooks_allowed if {
	authz.decision.allow with input as file_op("read_file", ".git/hooks/pre-commit", "read")
}

test_deny_git_config_write if {
	d := authz.decision with input as file_op("write_file", ".git/config", "write")
	not d.allow
	has_reason(d, ".git/config")
}

test_deny_ssh_any_mode if {
	not authz.decision.allow with input as file_op("read_file", ".ssh/id_ed25519", "read")
	not authz.decision.allow with input as file_op("list_directory", ".ssh/keys", "list")
}

# Issue 22: the rules cover the directories themselves and every way of making
# them: deleting or replacing .git (a `.git` file with `gitdir:` pointing at a
# planted git directory), any write below .git (nested repositories too), and
# listing or deleting .ssh.
test_git_directory_itself_and_gitdir_file_denied if {
	d := authz.decision with input as file_op("delete_file", ".git", "delete")
	not d.allow
	has_reason(d, "the git directory is read-only to file operations")
	not authz.decision.allow with input as file_op("write_file", ".git", "write")
	not authz.decision.allow with input as file_op("write_file", "./.git", "write")
	not authz.decision.allow with input as file_op("write_file", ".git/info/attributes", "write")
	not authz.decision.allow with input as file_op("write_file", "sub/.git", "write")
	not authz.decision.allow with input as file_op("delete_file", "sub/.git/config", "delete")
	authz.decision.allow with input as file_op("read_file", ".git/HEAD", "read")
	authz.decision.allow with input as file_op("list_directory", ".git", "list")
	authz.decision.allow with input as file_op("write_file", ".gitignore", "write")
	authz.decision.allow with input as file_op("write_file", "my.git/x", "write")
}

test_ssh_directory_itself_denied if {
	not authz.decision.allow with input as file_op("list_directory", ".ssh", "list")
	not authz.decision.allow with input as file_op("delete_file", ".ssh", "delete")
	not authz.decision.allow with input as file_op("list_directory", "home/.ssh", "list")
	not authz.decision.allow with input as file_op("read_file", "home/.ssh/id_rsa", "read")
	authz.decision.allow with input as file_op("list_directory", "ssh", "list")
}

test_deny_env_file_write if {
	not authz.decision.allow with input as file_op("write_file", ".env", "write")
	not authz.decision.allow with input as file_op("write_file", "app/.env", "write")
	authz.decision.allow with input as file_op("read_file", "app/.env", "read")
}

test_relative_path_normalizes if {
	authz.relative_path == "a/b/c" with input as file_op("read_file", "/./a//b/./c", "read")
}

test_deny_delete_character_and_allow_non_ascii if {
	d := authz.decision with input as file_op("read_file", "a\u007fb", "read")
	not d.allow
	has_reason(d, "control characters")
	t := authz.decision with input as file_op("read_file", "a\tb", "read")
	has_reason(t, "control characters")
	authz.decision.allow with input as file_op("read_file", "é/\"quoted\"\\x.txt", "read")
}

test_path_matchers if {
	authz.path_matches({"path": "a/b"}, "a/b")
	not authz.path_matches({"path": "a/b"}, "a/b/c")
	authz.path_matches({"prefix": "a/"}, "a/b")
	not authz.path_matches({"prefix": "a/"}, "b/a/")
	authz.path_matches({"suffix": "/.env"}, "x/.env")
	not authz.path_matches({"suffix": "/.env"}, ".env")
	authz.path_matches({"contains": "/.git/hooks/"}, "v/.git/hooks/x")
	authz.path_matches({"glob": "**/*.pem"}, "certs/a/key.pem")
	not authz.path_matches({"glob": "**/*.pem"}, "key.pem")
}

test_glob_rules_still_work if {
	rules := [{"glob": "secrets/**", "modes": ["read"], "reason": "no secrets"}]
	d := authz.decision with input as file_op("read_file", "./secrets//db.txt", "read")
		with data.gateway.files.rules as rules
	d.deny_reasons == ["no secrets"]
}
