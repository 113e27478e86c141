/** The personal-copy name and the shortened names and label values it is made with. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MAX_NAME, personalLabelValue, personalName } from "../../src/deploy/personal-name.js";
import { dnsLabel, isDnsLabel, isLabelValue, labelValue } from "../../src/kube/names.js";

const long = (n: number, c = "a") => c.repeat(n);

describe("personalName", () => {
  test("is <name>-<user> when that fits, so existing copies keep their names", () => {
    assert.equal(personalName("web", "alice"), "web-alice");
    assert.equal(personalName("db", "bob", "StatefulSet"), "db-bob");
    const exact = long(63 - "-alice".length);
    assert.equal(personalName(exact, "alice"), `${exact}-alice`);
    const sts = long(52 - "-alice".length);
    assert.equal(personalName(sts, "alice", "StatefulSet"), `${sts}-alice`);
  });

  test("a long name is cut to a valid label ending in a hash, within the kind's limit", () => {
    for (const kind of ["Deployment", "StatefulSet"] as const) {
      const n = personalName(long(70), "alice", kind);
      assert.ok(isDnsLabel(n, MAX_NAME[kind]), n);
      assert.equal(n.length, MAX_NAME[kind]);
      assert.match(n, /^a+-[0-9a-f]{8}$/);
    }
  });

  test("never ends in - where the cut falls on one", () => {
    // The old cut at 63 gave "<55 a>-x-------" style names ending in "-".
    for (let i = 40; i < 70; i++) {
      const name = `${long(i)}-${long(20, "b")}`;
      for (const kind of ["Deployment", "StatefulSet"] as const) {
        const n = personalName(name, "carol", kind);
        assert.ok(isDnsLabel(n, MAX_NAME[kind]), `${name} -> ${n}`);
      }
    }
    const old = `${long(62)}-alice`.slice(0, 63);
    assert.ok(old.endsWith("-"), "the old cut ends in -");
    assert.ok(isDnsLabel(personalName(long(62), "alice")));
  });

  test("two users whose copies shared a name under the old cut get two names", () => {
    const name = long(60);
    const old = (user: string) => `${name}-${user}`.slice(0, 63);
    assert.equal(old("alice"), old("alfred"));
    assert.notEqual(personalName(name, "alice"), personalName(name, "alfred"));
    assert.notEqual(personalName(name, "alice", "StatefulSet"), personalName(name, "alfred", "StatefulSet"));
  });

  test("is deterministic", () => {
    assert.equal(personalName(long(70), "alice"), personalName(long(70), "alice"));
  });

  test("characters a label cannot hold (a user with a dot) are replaced, the hash keeps it distinct", () => {
    const dotted = personalName("web", "john.doe");
    assert.ok(isDnsLabel(dotted), dotted);
    assert.notEqual(dotted, personalName("web", "john-doe"));
    assert.equal(personalName("web", "john-doe"), "web-john-doe");
  });
});

describe("personalLabelValue", () => {
  test("is <value>-<user> when that is a valid label value", () => {
    assert.equal(personalLabelValue("web", "alice"), "web-alice");
    assert.equal(personalLabelValue("Web_1.x", "john.doe"), "Web_1.x-john.doe");
  });

  test("a long value is shortened to 63 characters with a hash, distinct per user", () => {
    const a = personalLabelValue(long(60), "alice");
    const b = personalLabelValue(long(60), "alfred");
    assert.ok(isLabelValue(a) && isLabelValue(b), `${a} ${b}`);
    assert.equal(a.length, 63);
    assert.notEqual(a, b);
  });

  test("an empty value still gives a valid value", () => {
    const v = personalLabelValue("", "alice");
    assert.ok(isLabelValue(v), v);
    assert.match(v, /^alice-[0-9a-f]{8}$/);
  });
});

describe("kube/names", () => {
  test("dnsLabel leaves a valid label alone and repairs anything else", () => {
    assert.equal(dnsLabel("web"), "web");
    for (const s of ["Web", "-web", "web-", "a_b", "a.b", long(64), "", "---"]) {
      const n = dnsLabel(s);
      assert.ok(isDnsLabel(n), `${JSON.stringify(s)} -> ${n}`);
    }
    assert.ok(dnsLabel(long(30), 20).length <= 20);
  });

  test("labelValue leaves a valid value alone and repairs anything else", () => {
    assert.equal(labelValue(""), "");
    assert.equal(labelValue("Deployment.web"), "Deployment.web");
    for (const s of ["-x", "x.", "a/b", `StatefulSet.${long(60)}`]) {
      const v = labelValue(s);
      assert.ok(isLabelValue(v), `${s} -> ${v}`);
    }
  });
});
