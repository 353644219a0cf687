/* config_open_trusted: what the plugin runs or loads must be changeable by
 * root alone (the file and every directory on its way, links followed and
 * their targets checked too), and is opened with O_NOFOLLOW; and
 * config_check_params: a group's Params against its module's parameter
 * list. Every case builds its files in a fresh directory; the ones that need
 * another owner run only as root (a file given to nobody). */
#include "helpers.h"

#include "plugin/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fixture {
  char *dir;
  char why[2048];
};

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof(*f));
  if (f == NULL || (f->dir = tmpdir_new()) == NULL)
    return -1;
  log_reset();
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  tmpdir_remove(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

/* DIR/name, in a buffer that lives as long as the test. */
static const char *at(struct fixture *f, const char *name) {
  static char paths[8][PATH_MAX];
  static int next;
  char *p = paths[next++ % 8];
  path_join(p, PATH_MAX, f->dir, name);
  return p;
}

static enum config_trust check(struct fixture *f, const char *path) {
  int fd = -1;
  f->why[0] = '\0';
  enum config_trust t =
      config_open_trusted(path, O_PATH, &fd, f->why, sizeof(f->why));
  if (t == CONFIG_TRUST_OK) {
    assert_true(fd >= 0);
    close(fd);
  } else {
    assert_int_equal(fd, -1);
    assert_true(f->why[0] != '\0');
  }
  return t;
}

#define assert_why(f, ...) assert_why_v(f, NEEDLES(__VA_ARGS__), __LINE__)

static void assert_why_v(struct fixture *f, const char *const needles[],
                         int line) {
  for (size_t i = 0; needles[i] != NULL; i++)
    if (strstr(f->why, needles[i]) == NULL) {
      print_error("why is \"%s\", expected \"%s\" in it\n", f->why, needles[i]);
      _fail(__FILE__, line);
    }
}

static void make_dir(const char *path, mode_t mode) {
  assert_int_equal(mkdir(path, 0700), 0);
  assert_int_equal(chmod(path, mode), 0);
}

static void test_trusted_file_opened(void **state) {
  struct fixture *f = *state;
  write_file(at(f, "m.ko"), "module");
  assert_int_equal(check(f, at(f, "m.ko")), CONFIG_TRUST_OK);
  /* O_RDONLY gives a descriptor to read from. */
  int fd = -1;
  assert_int_equal(
      config_open_trusted(at(f, "m.ko"), O_RDONLY, &fd, f->why, sizeof(f->why)),
      CONFIG_TRUST_OK);
  char buf[16] = "";
  assert_int_equal(read(fd, buf, sizeof(buf)), 6);
  assert_string_equal(buf, "module");
  close(fd);
}

static void test_missing(void **state) {
  struct fixture *f = *state;
  assert_int_equal(check(f, at(f, "none.ko")), CONFIG_TRUST_MISSING);
  assert_string_equal(f->why, "No such file or directory");
  assert_int_equal(check(f, at(f, "no/dir/m.ko")), CONFIG_TRUST_MISSING);
  assert_string_equal(f->why, "No such file or directory");
  write_file(at(f, "file"), "x");
  assert_int_equal(check(f, at(f, "file/m.ko")), CONFIG_TRUST_MISSING);
  assert_string_equal(f->why, "Not a directory");
}

static void test_not_regular(void **state) {
  struct fixture *f = *state;
  make_dir(at(f, "d.ko"), 0755);
  assert_int_equal(check(f, at(f, "d.ko")), CONFIG_TRUST_NOT_REGULAR);
  assert_string_equal(f->why, "not a regular file");
  assert_int_equal(check(f, "/"), CONFIG_TRUST_NOT_REGULAR);
  /* A FIFO is refused, and opening it to read does not hang. */
  assert_int_equal(mkfifo(at(f, "fifo.params"), 0644), 0);
  int fd;
  assert_int_equal(config_open_trusted(at(f, "fifo.params"), O_RDONLY, &fd,
                                       f->why, sizeof(f->why)),
                   CONFIG_TRUST_NOT_REGULAR);
}

/* The mode the plugin names, and the chmod that fixes it. */
static void test_writable_directories(void **state) {
  struct fixture *f = *state;
  const struct {
    mode_t mode;
    const char *says;
  } cases[] = {
      {0757, "is writable by others (mode 0757); fix with chmod o-w "},
      {0775, "is writable by its group (mode 0775); fix with chmod g-w "},
      {0777, "is writable by its group and others (mode 0777); fix with "
             "chmod go-w "},
      {01777, "is writable by its group and others (mode 1777)"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    char name[32], file[PATH_MAX + 8], want[PATH_MAX + 128];
    snprintf(name, sizeof(name), "d%zu", i);
    make_dir(at(f, name), 0755);
    snprintf(file, sizeof(file), "%s/m.ko", at(f, name));
    write_file(file, "x");
    assert_int_equal(chmod(at(f, name), cases[i].mode), 0);
    assert_int_equal(check(f, file), CONFIG_TRUST_REFUSED);
    snprintf(want, sizeof(want), "directory %s %s", at(f, name), cases[i].says);
    assert_why(f, want);
  }
}

/* The writable directory is found however deep: here two levels up. */
static void test_writable_directory_above(void **state) {
  struct fixture *f = *state;
  make_dir(at(f, "a"), 0755);
  make_dir(at(f, "a/b"), 0755);
  write_file(at(f, "a/b/m.ko"), "x");
  assert_int_equal(check(f, at(f, "a/b/m.ko")), CONFIG_TRUST_OK);
  assert_int_equal(chmod(at(f, "a"), 0757), 0);
  assert_int_equal(check(f, at(f, "a/b/m.ko")), CONFIG_TRUST_REFUSED);
  char want[PATH_MAX + 64];
  snprintf(want, sizeof(want), "directory %s is writable by others",
           at(f, "a"));
  assert_why(f, want);
}

static void test_writable_file(void **state) {
  struct fixture *f = *state;
  write_file(at(f, "m.ko"), "x");
  assert_int_equal(chmod(at(f, "m.ko"), 0646), 0);
  assert_int_equal(check(f, at(f, "m.ko")), CONFIG_TRUST_REFUSED);
  char want[2 * PATH_MAX + 64];
  snprintf(want, sizeof(want),
           "file %s is writable by others (mode 0646); fix with chmod o-w %s",
           at(f, "m.ko"), at(f, "m.ko"));
  assert_string_equal(f->why, want);
}

/* As root: give a file, then a directory, to nobody. */
static void test_foreign_owner(void **state) {
  struct fixture *f = *state;
  if (geteuid() != 0)
    skip(); /* only root can give a file away */
  write_file(at(f, "m.ko"), "x");
  assert_int_equal(chown(at(f, "m.ko"), 65534, 65534), 0);
  assert_int_equal(check(f, at(f, "m.ko")), CONFIG_TRUST_REFUSED);
  char want[2 * PATH_MAX + 64];
  snprintf(want, sizeof(want), "file %s is owned by user 65534", at(f, "m.ko"));
  assert_why(f, want);
  snprintf(want, sizeof(want), "not root; fix with chown root %s",
           at(f, "m.ko"));
  assert_why(f, want);

  make_dir(at(f, "theirs"), 0755);
  write_file(at(f, "theirs/m.ko"), "x");
  assert_int_equal(chown(at(f, "theirs"), 65534, 65534), 0);
  assert_int_equal(check(f, at(f, "theirs/m.ko")), CONFIG_TRUST_REFUSED);
  snprintf(want, sizeof(want), "directory %s is owned by user 65534",
           at(f, "theirs"));
  assert_why(f, want);
}

/* The file itself is never followed (O_NOFOLLOW), even to a good file. */
static void test_symlink_file_refused(void **state) {
  struct fixture *f = *state;
  write_file(at(f, "real.ko"), "x");
  assert_int_equal(symlink("real.ko", at(f, "link.ko")), 0);
  assert_int_equal(check(f, at(f, "link.ko")), CONFIG_TRUST_REFUSED);
  assert_why(f, "link.ko is a symbolic link", "O_NOFOLLOW",
             "point the option at the file itself");
  int fd;
  assert_int_equal(config_open_trusted(at(f, "link.ko"), O_RDONLY, &fd, f->why,
                                       sizeof(f->why)),
                   CONFIG_TRUST_REFUSED);
}

/* A link to a directory on the way is followed (Debian's /lib is a link to
 * usr/lib), and where it leads is checked as well. */
static void test_symlinked_directory_followed(void **state) {
  struct fixture *f = *state;
  make_dir(at(f, "usr"), 0755);
  make_dir(at(f, "usr/lib"), 0755);
  write_file(at(f, "usr/lib/m.ko"), "x");
  assert_int_equal(symlink("usr/lib", at(f, "lib")), 0);
  assert_int_equal(symlink(at(f, "usr/lib"), at(f, "abs")), 0);
  assert_int_equal(check(f, at(f, "lib/m.ko")), CONFIG_TRUST_OK);
  assert_int_equal(check(f, at(f, "abs/m.ko")), CONFIG_TRUST_OK);

  /* A link into a directory others can write: refused, naming it. */
  make_dir(at(f, "open"), 0755);
  write_file(at(f, "open/m.ko"), "x");
  assert_int_equal(chmod(at(f, "open"), 0777), 0);
  assert_int_equal(symlink("open", at(f, "shut")), 0);
  assert_int_equal(check(f, at(f, "shut/m.ko")), CONFIG_TRUST_REFUSED);
  char want[PATH_MAX + 64];
  snprintf(want, sizeof(want), "directory %s is writable", at(f, "open"));
  assert_why(f, want);
}

static void test_symlink_loop(void **state) {
  struct fixture *f = *state;
  assert_int_equal(symlink("b", at(f, "a")), 0);
  assert_int_equal(symlink("a", at(f, "b")), 0);
  assert_int_equal(check(f, at(f, "a/m.ko")), CONFIG_TRUST_ERROR);
  assert_why(f, "Too many levels of symbolic links");
}

/* `..' walks back up through a directory that is checked too. */
static void test_dot_dot(void **state) {
  struct fixture *f = *state;
  make_dir(at(f, "sub"), 0755);
  make_dir(at(f, "open"), 0755);
  write_file(at(f, "m.ko"), "x");
  assert_int_equal(check(f, at(f, "sub/../m.ko")), CONFIG_TRUST_OK);
  assert_int_equal(check(f, at(f, "./sub/./../m.ko")), CONFIG_TRUST_OK);
  assert_int_equal(chmod(at(f, "open"), 0777), 0);
  assert_int_equal(check(f, at(f, "open/../m.ko")), CONFIG_TRUST_REFUSED);
}

/* A relative path is walked from /, through the working directory. */
static void test_relative_path(void **state) {
  struct fixture *f = *state;
  char cwd[PATH_MAX];
  assert_non_null(getcwd(cwd, sizeof(cwd)));
  make_dir(at(f, "open"), 0755);
  write_file(at(f, "open/m.ko"), "x");
  assert_int_equal(chdir(at(f, "open")), 0);
  enum config_trust ok = check(f, "m.ko");
  assert_int_equal(chmod(at(f, "open"), 0777), 0);
  enum config_trust refused = check(f, "m.ko");
  assert_int_equal(chdir(cwd), 0);
  assert_int_equal(ok, CONFIG_TRUST_OK);
  assert_int_equal(refused, CONFIG_TRUST_REFUSED);
  assert_why(f, "/open is writable by its group and others");
}

/* Real paths: /tmp (mode 1777) is refused; a system binary reached through
 * merged /usr's /bin link is not. */
static void test_real_paths(void **state) {
  struct fixture *f = *state;
  struct stat st;
  if (stat("/tmp", &st) != 0 || (st.st_mode & 01777) != 01777)
    skip();
  char path[] = "/tmp/collectd-stap-trust.XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  enum config_trust t = check(f, path);
  unlink(path);
  assert_int_equal(t, CONFIG_TRUST_REFUSED);
  assert_why(f, "directory /tmp is writable by its group and others (mode "
                "1777)");
  if (lstat("/bin/dash", &st) == 0 && S_ISREG(st.st_mode))
    assert_int_equal(check(f, "/bin/dash"), CONFIG_TRUST_OK);
}

/* ---- The parameter list -------------------------------------------------- */

static struct group_config group_with(struct fixture *f, const char *module,
                                      const char *const names[]) {
  struct group_config g;
  memset(&g, 0, sizeof(g));
  snprintf(g.name, sizeof(g.name), "tcp");
  path_join(g.module, sizeof(g.module), f->dir, module);
  for (size_t i = 0; names[i] != NULL; i++) {
    snprintf(g.params[i].name, CONFIG_PARAM_NAME_SIZE, "%s", names[i]);
    snprintf(g.params[i].value, CONFIG_PARAM_VALUE_SIZE, "1");
    g.nparams++;
  }
  return g;
}

#define GROUP(f, module, ...) group_with(f, module, NEEDLES(__VA_ARGS__))

static int check_params(struct fixture *f, const struct group_config *g) {
  f->why[0] = '\0';
  return config_check_params(g, f->why, sizeof(f->why));
}

static void test_params_path(void **state) {
  (void)state;
  char out[PATH_MAX];
  config_params_path("/m/collectd_stap_tcp.ko", out, sizeof(out));
  assert_string_equal(out, "/m/collectd_stap_tcp.params");
  config_params_path("/m/tcp.replay", out, sizeof(out));
  assert_string_equal(out, "/m/tcp.replay.params");
}

static void test_params_listed(void **state) {
  struct fixture *f = *state;
  write_file(at(f, "collectd_stap_tcp.params"),
             "# Public parameters of tcp (scripts/build-modules.sh)\n"
             "interval_ms\n"
             "\n"
             "  ephemeral_low  \n"
             "max_ports\r\n"
             "\t# an indented comment\n"
             "top_n");
  struct group_config g =
      GROUP(f, "collectd_stap_tcp.ko", "max_ports", "top_n", "ephemeral_low");
  assert_int_equal(check_params(f, &g), 0);
}

/* Without Params no list is needed, nor read. */
static void test_no_params_no_list(void **state) {
  struct fixture *f = *state;
  struct group_config g;
  memset(&g, 0, sizeof(g));
  path_join(g.module, sizeof(g.module), f->dir, "collectd_stap_tcp.ko");
  assert_int_equal(check_params(f, &g), 0);
  /* Even a bad list is not read then. */
  write_file(at(f, "collectd_stap_tcp.params"), "not-a-name\n");
  assert_int_equal(check_params(f, &g), 0);
}

static void test_param_not_listed(void **state) {
  struct fixture *f = *state;
  write_file(at(f, "collectd_stap_tcp.params"),
             "# tcp\ninterval_ms\nephemeral_low\nmax_ports\n");
  struct group_config g =
      GROUP(f, "collectd_stap_tcp.ko", "max_ports", "port_count");
  assert_int_equal(check_params(f, &g), -1);
  char want[3 * PATH_MAX];
  snprintf(want, sizeof(want),
           "Param `port_count' is not a parameter of module %s; allowed: "
           "interval_ms, ephemeral_low, max_ports (from %s)",
           at(f, "collectd_stap_tcp.ko"), at(f, "collectd_stap_tcp.params"));
  assert_string_equal(f->why, want);

  /* A list with no names allows none. */
  write_file(at(f, "collectd_stap_tcp.params"), "# nothing public\n");
  assert_int_equal(check_params(f, &g), -1);
  assert_why(f, "Param `max_ports' is not a parameter", "allowed: none");
}

static void test_params_without_list(void **state) {
  struct fixture *f = *state;
  struct group_config g = GROUP(f, "collectd_stap_tcp.ko", "max_ports");
  assert_int_equal(check_params(f, &g), -1);
  char want[PATH_MAX + 64];
  snprintf(want, sizeof(want), "no parameter list %s beside the module",
           at(f, "collectd_stap_tcp.params"));
  assert_why(f, want, "rebuild the module with `make modules'",
             "or remove the group's Param options");
}

static void test_bad_lists(void **state) {
  struct fixture *f = *state;
  const char *list = at(f, "collectd_stap_tcp.params");
  struct group_config g = GROUP(f, "collectd_stap_tcp.ko", "max_ports");

  write_file(list, "interval_ms\n# ok\nmax-ports\n");
  assert_int_equal(check_params(f, &g), -1);
  assert_why(f, "parameter list ",
             "line 3: `max-ports' is not a parameter "
             "name");
  write_file(list, "max_ports # trailing comment\n");
  assert_int_equal(check_params(f, &g), -1);
  assert_why(f, "line 1: `max_ports # trailing comment'");
  write_file(list, "bell\x07\n");
  assert_int_equal(check_params(f, &g), -1);
  assert_why(f, "`bell\\x07' is not a parameter name");

  /* Larger than 64 KiB: not a list the build wrote. */
  char *big = malloc(CONFIG_PARAMS_MAX_BYTES + 2);
  assert_non_null(big);
  memset(big, '#', CONFIG_PARAMS_MAX_BYTES + 1);
  big[CONFIG_PARAMS_MAX_BYTES + 1] = '\0';
  write_file(list, big);
  free(big);
  assert_int_equal(check_params(f, &g), -1);
  assert_why(f, "larger than 64 KiB");

  /* A NUL byte. */
  FILE *fp = fopen(list, "w");
  assert_non_null(fp);
  fwrite("max_ports\n\0x\n", 1, 13, fp);
  fclose(fp);
  assert_int_equal(check_params(f, &g), -1);
  assert_why(f, "NUL byte");
}

/* The list is held to the same trust as the module. */
static void test_untrusted_list(void **state) {
  struct fixture *f = *state;
  const char *list = at(f, "collectd_stap_tcp.params");
  struct group_config g = GROUP(f, "collectd_stap_tcp.ko", "max_ports");
  write_file(list, "max_ports\n");
  assert_int_equal(chmod(list, 0666), 0);
  assert_int_equal(check_params(f, &g), -1);
  char want[2 * PATH_MAX];
  snprintf(want, sizeof(want), "parameter list %s: file %s is writable", list,
           list);
  assert_why(f, want);

  assert_int_equal(unlink(list), 0);
  write_file(at(f, "elsewhere"), "max_ports\n");
  assert_int_equal(symlink("elsewhere", list), 0);
  assert_int_equal(check_params(f, &g), -1);
  assert_why(f, "is a symbolic link");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_trusted_file_opened),
      T(test_missing),
      T(test_not_regular),
      T(test_writable_directories),
      T(test_writable_directory_above),
      T(test_writable_file),
      T(test_foreign_owner),
      T(test_symlink_file_refused),
      T(test_symlinked_directory_followed),
      T(test_symlink_loop),
      T(test_dot_dot),
      T(test_relative_path),
      T(test_real_paths),
      T(test_params_path),
      T(test_params_listed),
      T(test_no_params_no_list),
      T(test_param_not_listed),
      T(test_params_without_list),
      T(test_bad_lists),
      T(test_untrusted_list),
  };
  unit_filter_from_env();
  return cmocka_run_group_tests_name("trust", tests, NULL, NULL);
}
