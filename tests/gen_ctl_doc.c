/*
 * gen_ctl_doc.c — prints the apex_ctl key table of docs/API.md from the registry itself
 * (apex_ctl_count / apex_ctl_info), so the documentation cannot drift from the code.
 *
 *   apex_gen_ctl_doc                   print the table (markdown) on stdout
 *   apex_gen_ctl_doc --check API.md    exit 1 (saying how to fix it) if API.md's table differs
 *   apex_gen_ctl_doc --update API.md   rewrite the table in API.md
 *
 * The table sits between the lines "<!-- ctl-table:begin -->" and "<!-- ctl-table:end -->".
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apexalloc.h"


#define BEGIN_MARK "<!-- ctl-table:begin -->\n"
#define END_MARK   "<!-- ctl-table:end -->"

typedef struct { char *text; size_t len, cap; } buf_t;

static void put(buf_t *b, const char *s) {
  size_t n = strlen(s);
  if (b->len + n + 1 > b->cap) {
    b->cap = (b->len + n + 1) * 2;
    b->text = realloc(b->text, b->cap);
    if (b->text == NULL) { perror("realloc"); exit(2); }
  }
  memcpy(b->text + b->len, s, n + 1);
  b->len += n;
}

static const char *type_name(int type) {
  switch (type) {
    case APEX_CTL_BOOL:    return "bool (int)";
    case APEX_CTL_SIZE:    return "size_t";
    case APEX_CTL_STRING:  return "string";
    case APEX_CTL_COMMAND: return "command";
    default:               return "?";
  }
}

/* Markdown table cells: a '|' would end the cell, and "<i>" outside code would be HTML. */
static void put_cell_text(buf_t *b, const char *s) {
  char piece[2] = { 0, 0 };
  for (; *s; s++) {
    if (strncmp(s, "<i>", 3) == 0) { put(b, "`<i>`"); s += 2; continue; }
    if (*s == '|') { put(b, "\\|"); continue; }
    piece[0] = *s;
    put(b, piece);
  }
}

static void make_table(buf_t *b) {
  put(b, "| key | type | unit | writable | env var | description |\n");
  put(b, "| --- | --- | --- | --- | --- | --- |\n");
  for (size_t i = 0; i < apex_ctl_count(); i++) {
    apex_ctl_info_t info;
    if (apex_ctl_info(i, &info, sizeof info) != 0) { fprintf(stderr, "apex_ctl_info(%zu) failed\n", i); exit(2); }
    const char *env = info.env;
    char cell[256];
    put(b, "| `");
    put(b, info.name);
    put(b, "` | ");
    put(b, type_name(info.type));
    put(b, " | ");
    put(b, info.unit);
    put(b, " | ");
    put(b, info.type == APEX_CTL_COMMAND ? "run" : info.writable ? "yes" : "no");
    put(b, " | ");
    if (env != NULL) { snprintf(cell, sizeof cell, "`%s`", env); put(b, cell); }
    put(b, " | ");
    put_cell_text(b, info.description);
    if (info.index_count > 0) {
      snprintf(cell, sizeof cell, " (`<i>` = 0 .. %zu)", info.index_count - 1);
      put(b, cell);
    }
    put(b, " |\n");
  }
}

static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) { perror(path); exit(2); }
  buf_t b = { NULL, 0, 0 };
  char chunk[4096];
  size_t n;
  put(&b, "");
  while ((n = fread(chunk, 1, sizeof chunk - 1, f)) > 0) {
    chunk[n] = '\0';
    if (strlen(chunk) != n) { fprintf(stderr, "%s: NUL byte\n", path); exit(2); }
    put(&b, chunk);
  }
  fclose(f);
  *len = b.len;
  return b.text;
}

int main(int argc, char **argv) {
  buf_t table = { NULL, 0, 0 };
  make_table(&table);
  if (argc == 1) { fputs(table.text, stdout); return 0; }
  if (argc != 3 || (strcmp(argv[1], "--check") != 0 && strcmp(argv[1], "--update") != 0)) {
    fprintf(stderr, "usage: %s [--check|--update docs/API.md]\n", argv[0]);
    return 2;
  }
  const char *path = argv[2];
  size_t len;
  char *doc = read_all(path, &len);
  char *begin = strstr(doc, BEGIN_MARK);
  char *end = begin ? strstr(begin, END_MARK) : NULL;
  if (begin == NULL || end == NULL) {
    fprintf(stderr, "%s: no section between \"%.*s\" and \"%s\"\n", path, (int)strlen(BEGIN_MARK) - 1, BEGIN_MARK,
            END_MARK);
    return 1;
  }
  begin += strlen(BEGIN_MARK);
  size_t old_len = (size_t)(end - begin);
  bool same = old_len == table.len && memcmp(begin, table.text, old_len) == 0;
  if (strcmp(argv[1], "--check") == 0) {
    if (same) { printf("%s: the apex_ctl key table is up to date (%zu keys)\n", path, apex_ctl_count()); return 0; }
    /* Show the first line that differs. */
    size_t i = 0, line = 1;
    while (i < old_len && i < table.len && begin[i] == table.text[i]) { if (begin[i] == '\n') line++; i++; }
    const char *want = table.text + i, *have = begin + i;
    while (want > table.text && want[-1] != '\n') want--;
    while (have > begin && have[-1] != '\n') have--;
    fprintf(stderr,
            "%s: the apex_ctl key table differs from the registry in core/ctl.c (line %zu of the table):\n"
            "  docs:     %.*s\n  registry: %.*s\n"
            "Regenerate it with:\n  %s --update %s\n(then review the diff and commit docs/API.md)\n",
            path, line, (int)strcspn(have, "\n"), have, (int)strcspn(want, "\n"), want, argv[0], path);
    return 1;
  }
  if (same) return 0;
  FILE *f = fopen(path, "wb");
  if (f == NULL) { perror(path); return 2; }
  fwrite(doc, 1, (size_t)(begin - doc), f);
  fwrite(table.text, 1, table.len, f);
  fwrite(end, 1, len - (size_t)(end - doc), f);
  if (fclose(f) != 0) { perror(path); return 2; }
  printf("%s: apex_ctl key table updated (%zu keys)\n", path, apex_ctl_count());
  return 0;
}
