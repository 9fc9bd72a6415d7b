"""Grounding: a narrative may name, link, count and date only what its facts give.

Names are a closed vocabulary. Whatever in a narrative is shaped like a name must be a name
of the facts: a service, team or on-call of the topology, a failure mode, a severity, or
another structured value of the prompt document (tiers, incident ids, the event's name,
the document's own keys). Shaped like a name means

- an identifier: kebab-case, snake_case, dotted or camelCase, or letters mixed with digits
  (`ledger-sync`, `billing_gateway`, `ledgerSync`, `svc2`);
- a capitalised word or run of words that does not start a sentence (`Atlas`,
  `Project Phoenix`, `Billing Gateway`), or an all-capitals word (`ATLAS`);
- the word before a noun that names a component ("the ledger service", "the Atlas cluster",
  "Billing on-call");
- a word in backticks or quotes.

A word of a name stands for it ("Redis" of redis-cache, "Payment Provider"), but an identifier
must be a whole name: `redis-sync` is an invention however real `redis` is.

What is not a fact's name passes only when it is ordinary prose: a word of ORDINARY_WORDS (a
curated list of English and reliability words that leaves out the business nouns services
and teams are named after: billing, ledger, wallet ...), a hyphenated compound of
COMMON_COMPOUNDS (every part of which is itself an ordinary word), a prefix or suffix
compound of an ordinary word ("non-critical", "zone-wide", "30-minute"), an acronym of
ACRONYMS, a capitalised phrase of PHRASES ("Incident Commander") or a token such as `SEV1`,
`p99` or `5xx`. Nothing else is let through, whether or not it contains a component word:
an identifier is never ordinary prose unless it is listed. Products and tools (Kubernetes,
PostgreSQL, Kafka) are names too: the system prompt forbids naming a tool that is not in the
facts, and naming one the organisation may not run is as ungrounded as inventing a service.

Past incidents' titles and the selection reason are free text (people's words, possibly
carrying injected instructions): they are data for the model, never a source of names.

URLs must be runbooks of the facts; numbers and dates must be the facts' (docs/narration.md).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from whatif.schemas import FAILURE_MODES, SEVERITIES, Narrative

URL = re.compile(r"https?://[^\s)\]>\"'`]+")
NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w])")
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
HTTP_CODE = re.compile(r"\b(?:HTTP|status)\s+([45]\d\d)\b|\b([45]\d\d)\s+(?:errors?|responses?)\b")
JARGON = re.compile(r"\b(?:SEV\d|P\d|p\d\d|[45]xx|[A-Z]+\d+)\b")
# A word: letters and digits, joined inside by - _ . and apostrophes ("api-gateway's").
TOKEN = re.compile(r"[^\W_](?:[\w.'’-]*[^\W_])?")
SEPARATOR = re.compile(r"[^\W_][-_.][^\W_]")
# Counts, percentiles, severities, status classes, units and ordinals: not names.
QUANTITY = re.compile(
    r"(?:sev-?\d|p\d{1,3}(?:\.\d+)?|[1-5]xx|\d+(?:\.\d+)?(?:x|ms|s|m|min|mins|h|hr|hrs|d|k|st|nd"
    r"|rd|th|gb|mb|tb|kb))",
    re.IGNORECASE,
)
QUOTED = re.compile(r"`([^`\n]+)`|[\"“]([^\"“”\n]+)[\"”]|(?<![^\W_])['‘]([^'‘’\n]+)['’](?![^\W_])")
OPENERS = " \t\"'“‘([*•-"  # what may stand between a sentence's end and its first word
FREE_TEXT_KEYS = frozenset({"title", "why_selected"})  # of the prompt document
NOT_IN_FACTS = "which is not a service, team, on-call or failure mode of the facts"

ABBREVIATIONS = frozenset({"e.g", "i.e", "etc", "vs", "a.m", "p.m", "cf"})


def _words(text: str, separator: str | None = None) -> frozenset[str]:
    """A word list written as text, one entry per separator (whitespace by default)."""
    return frozenset(w.strip() for w in text.split(separator) if w.strip())


# Function words, numbers, days and months.
_FUNCTION_WORDS = """
a an the this that these those each every any some no none all both either neither one two
three four five six seven eight nine ten eleven twelve dozen hundred thousand first second
third fourth fifth last next other another same such own its it itself their theirs them they
our ours we us your yours you his her he she my me i which what who whom whose when where why
how whether if then than as at by for from in into of off on onto out over per to up down via
with within without after before during until till while since about above below under
between among across through throughout against around behind beyond near toward towards
upon along alongside and or but nor so yet not only also too very more most less least much
many few fewer several enough again already still just even ever never always often soon now
once here there is are was were be been being am do does did done have has had having can
could may might must shall should will would let get got make made take took taken give
gave given go went gone keep kept put set see saw seen say said know knew known tell told ask
use used need want try else instead whole half whoever whatever whichever anyone anything
everyone everything someone something nothing nobody somewhere elsewhere anywhere yes okay
ok like unlike including except plus minus versus despite although though because unless
whereas otherwise therefore thus hence meanwhile moreover however finally first firstly
secondly then later earlier early late today tomorrow yesterday hour hours minute minutes
second seconds day days week weeks month months year years quarter morning afternoon
evening night weekend weekday monday tuesday wednesday thursday friday saturday sunday
january february march april may june july august september october november december
"""

# Words of reliability work: failures, alerts, responses, mitigations.
_RELIABILITY_WORDS = """
ability able absorb accept acceptable access accessible account accurate acknowledge
acknowledgement act action actions active actively actual add additional address adequate
adjust administrator admission affect affected agree ahead alarm alert alerting alerts align
allow alone alternative amount amplification amplify analyse analysis analyze announce
answer anticipate apparent appear application applications apply approach appropriate
approve approval architecture area arrive assess assessment assign assume assumption attempt
attention audience automatic automatically automate automation autoscaler autoscaling
availability available average avoid aware awareness back backend backing backlog backoff
backup backups bad balance balancer bandwidth base baseline basic batch become begin
beginning behaviour behavior believe benefit best better big bigger blast block blocked
board body bottleneck bound boundary brief briefly bridge bring broad broken broker budget
buffer bug build built burn burst business busy button cache cached caches caching calendar
call caller callers calls can cancel canary capacity capture care careful carefully case
cases catch cattle cause caused ceiling central certain certificate chain chance change
changed changes channel channels chaos cheap check checklist checks choice choose chosen
circuit claim clean clear clearly client clients climb close closely code cold collect
combined come command commander commit common communicate communication communications comms
compare complete completely complex component components concern concurrency condition
conditions confidence confirm confirmed conflict connect connection connections consider
consistent constant contact contain containment context continue control controls coordinate
coordinator copy core correct correctly correlate cost count cover coverage crash create
credential credentials critical cross current currently customer customers cut daily damage
dashboard dashboards data database databases date deadline deal debrief decide decision
declare declared default defer define degradation degrade degraded degrades delay delete
deliver delivery demand depend dependence dependencies dependency dependent dependents
deploy deployed deployment deployments deploys depth describe design detail detect detected
detection determine developer developers diagnose diagnosis difference different direct
directly disable disabled disaster discover discuss disk disks display disruption distributed
document documentation domain done double down downstream downtime drain drill drop dropped
due duplicate duration dynamic each early ease easy edge effect effective effort either
elevated emergency enable enabled end endpoint endpoints engineer engineering engineers
ensure enter entire entry environment error errors escalate escalation estimate evaluate
event events evidence exact exactly examine example exceed exception excess exercise exhausted
exhaustion exist existing expect expected experience expert explain exposed exposure extend
external extra facilitator fact factor fail failed failing fails failure failures fair fall
fallback false fast faster fault faulty feature feedback fetch field fill find finding fine
finish fire fired first fix fixed flag flags flaky fleet flood flow focus follow following
follower forecast form format forward free freeze frequency frequent fresh frontend full
function functional further gap gather gateway general generate global goal good graceful
gracefully graph great ground group grow growing growth guard guess guidance guide handle
handling handoff happen happens hard hardware harm head headroom health healthy heavy help
high higher highest history hit hits hold host hosts hot hotfix hourly huge idea identify
ignore immediate immediately impact impacted impacts implement important improve incident
incidents include increase independent independently index indicator individual inform
information infrastructure initial input inspect instability instance instances internal
intervene investigate investigation isolate isolated isolation issue issues item items job
jobs join journal keep key keys kill kind lag large larger latency launch layer lead leader
leak learn least leave level likely limit limits line link list listen live load local log
logging logs long longer look loop lose loses loss lost low lower machine main maintain
maintenance major make manage manual manually many map margin mark master match matter maximum
mean measure mechanism medium meet memory mention message messages method metric
metrics middle migrate migration mind minimal minimum minor miss missing mistake mitigate
mitigation mitigations mobile mode model moderate monitor monitoring mortem move multiple
must name need network new node nodes noise normal normally note notice notify number
object observe observed obvious occur offline old ongoing online open operate operation
operational operations operator option  outage outages outcome outcomes overload
overloaded owner owners ownership pace page paged pager pages paging pair parallel part
partial partition pass path pattern pause peak pending people percent percentage
percentile perform performance period permission persist person phase pick pin plan planned
platform play player point policy poll pool pools poor possible post potential practice
predict predicted prepare present pressure prevent previous primary priority probability
probable problem problems procedure process produce production progress progressive project
promote propagate propagation protect provide public pull purge push quality query queries
question questions queue queued queues quick quickly quiet quota raise random range rank rapid
rate rates reach react read ready real reason rebalance rebuild receive recent recently
record recover recovery reduce redundancy redundant refresh region regional regions regression
rehearse rehearsal reject related release releases reliability reliable remain remediate
remove repair repeat replace replica replicas replicate replication report reports request
requests require required reserve reset resilience resilient resolve resolved resource
resources respond responder responders response responses responsible restart restore
restored result resume retry retries return revert review revoke right rise rising risk
risks role roles roll rollback rollout room root rotate rotation route routing rule run
runbook runbooks running safe safely safety same sample saturate saturated saturation save
scale scaling scenario scenarios schedule scheduled scope scribe second secondary secret
secrets section security see seem segment send senior sense separate sequence serve server
servers service services serving session set setting settings severe severity shadow share
shared shed shift short show shut side sign signal signals silent similar simple simulate
simulated simulation single site size skip slow slower small smoke snapshot snapshots soft
software solution source space spare speak specific spike split spread spreads stable stack
staff staffing stage staged stakeholder stakeholders stale standby start state statement
status stay steady step steps stop storage store storm strategy stream strong subset succeed
success successful sudden suffer suffers suggest summary supply support suspect sustain
switch symptom symptoms synthetic system systems table tabletop take target task team teams
technical telemetry temporary test tested testing thread threshold throttle throughput
ticket tickets tier tight time timeline timeout timeouts timer timing toggle tolerance tool
top total trace traces tracing track traffic transient trend trial trigger triggered triage
trouble true trust turn typical typically unable unavailable unclear underlying understand
unexpected unhealthy unit unknown unusual update updates upgrade upstream urgent usage use
user users usual usually valid validate value verify version visible volume wait warm warn
warning watch way weak wide window work worker workers workload world worse worst write
writes wrong zone zones
"""

# General English that reports, plans and reviews use.
_GENERAL_WORDS = """
absent accident accurate achieve across activity actually adapt addition administrator admit
advise affordable afraid agenda agreement aim alarm alive allocate almost alter among
analyst angle annual anyway apart apologise appetite approximately argue arrange article
aside aspect assumption attach attend attitude audience author avoidable await awkward basis
bear beat behave behind belief below beneath benefit beside beyond blameless blind blow
boost borrow brand breach breadth brief bright broadcast budget burden calm capable capture
careful carry category cautious certainly challenge chance character charge cheap chief
choose claim classic classify clever climb close coach collaborate colleague combination
comfortable comment commitment communicate community compatible competent complain complaint
complicated comply comprehensive compromise concentrate concept conclude conclusion concrete
conduct conference confident confusion consequence conservative considerable consistency
constraint construct consult consume contingency continuous contribute convenient
conversation convince cooperate coordination corner correction costly counter couple courage
course creative crew crisis criteria crucial curious custom daily dangerous dear debate
decent declaration decline decrease dedicated deep defence defensive definite deliberate
demonstrate deny departure deputy derive desire desk despite destroy detailed determine
develop difficult dimension disagree discipline disclose discussion dismiss disrupt distinct
distribute divide document doubt draft dramatic draw dry duty eager ease economic edit
educate efficient effectively elaborate element eliminate embarrassing emerge emphasis
employ empty encounter encourage energy engage enhance enormous entirely equal equipment
equivalent escape especially essential establish estimate evaluate eventually evident evolve
exactly examine excellent excessive exchange exclude excuse execute exercise exhaust expand
expense expensive explicit explore express extend extensive extreme facility factor familiar
fast fatal favour fear feasible feature feel figure final firm flat flexible fluctuate fly
fold follow force foreseeable formal former fortunately foundation fraction frame frank
frequently friction front frustrate fully fundamental gain general generous genuine gently
govern gradual gradually grant grateful guarantee guilty habit handbook happy hardly harsh
hazard headline heal hear heavily helpful hesitate hidden highlight hire honest hope
horizontal horizontally huge human hurry hypothesis ideal identical ignore illustrate
imagine impatient imply impossible impression improvement inadequate incentive incline
incorrect incremental indeed indicate inevitable influence informal inherent initially
initiative insight insist install instruction insufficient intend intense intent interest
interrupt introduce invest invisible invite involve isolated justify keen kill knowledge
lack landscape language largely lasting launch lay lean leadership learning lengthy lesson
liability lift likelihood literally loose lucky mainly majority manager mandatory manner
marginal massive mature meaning meanwhile measurable mechanical mental merely message mild
mindful minimise minority mislead mission mistake mix modest modify moment momentum motivate
mutual narrow natural navigate nearly necessary negative negotiate neither nervous
nevertheless nice nominal notable noticeable numerous objective obligation obtain occasional
odd offer official opinion opportunity oppose optimal optional ordinary organise original
outline overall overcome overdue oversight overview owe panic paragraph particular
particularly partly passive patience pay perfect perhaps permanent personal perspective
persuade physical picture piece place plain pleasant plenty popular portion positive
possibly powerful practical precise preference preliminary premature presence preserve
pretty primarily principle prior private probably proceed productive professional prominent
promise prompt proof proper proportion proposal propose prospect protection prove publish
purpose pursue qualify radical rare rather ratio rational raw realistic realise reasonable
recall recognise recommend reconsider reflect reform refuse regard regardless regular
regularly reinforce relation relatively relevant relief rely remarkable remind remote
repeatedly replacement represent reputation request rescue resist resolution respect
responsibility restrict retain retire reveal reverse revise rigorous robust rough roughly
routine rush satisfy scale scarce scope score scratch seek seldom select sensible serious
settle severely shape sharp shortly significant significantly silly simply sincere situation
skill slight slightly smooth solid solve somewhat sophisticated sort sound speed stable
standard statement steady stick strict strongly structure struggle stuck subject submit
substantial subtle sufficient suitable supervise suppose sure surface surprise surprising
survey survive suspend suspicious swift tackle talk tangible task teach tend tense term
terrible thorough thoroughly thought threat tidy tiny tolerate topic tough trade tradition
transfer transform transparent treat tremendous tricky trivial truly typical ultimately
uncertain uncomfortable underestimate undergo undo unfortunately uniform unique unlikely
unnecessary unreliable unstable unusually upcoming upset urge useful useless vague valuable
various vast verbal vertical vertically via victim view vital voluntary vulnerable wake
weigh welcome whereas widely willing wise wish witness wonder worry worth worthwhile yield
evict eviction ratio hit engineering manager administrator
"""
# Words of systems and their parts.
_SYSTEM_WORDS = """
abnormal accelerate access acknowledged activate adapter admin advance advice
aggregate allocation anomaly api apis app apps assist async attack audit authority bit bits
blue boot bottom box brownout bucket buckets bulk byte bytes cap capacity cell center chart
checkpoint cleanup cluster clusters cohort collapse column commit completion compute
concurrent config configuration configurations consumer consumers container containers
contract controller cookie corrupt corrupted corruption coverage cpu crashloop cron cursor
cutover cycle daemon datacenter datastore deadlock decommission degradation delta denial
deny dependable destination device devices diff digest direction disconnect dispatch dns
domain draining driver drift durable egress ejection elastic emit encryption engine entries
error eviction evictions exporter failover failovers failback fan fencing file files filter
firewall fix flapping forward frame gate green half handover hardening hash heartbeat hop
host hostname idle image ingress inode instance integration integrity interface interval ip
jitter journal kernel label latch layer lease library lifecycle limiter link listener lock
locks lockout lookup loss manifest mesh messaging mirror module mount mutex namespace nat
network networking offset operator orchestrator origin outbound overflow packet packets
panel parameter parser patch payload peer peering permission pipeline pipelines plane pod
pods poison port postmortem probe processor producer protocol provider providers proxy
proxies publisher purge quorum rack reader readiness rebalance receiver reconcile redirect
redundancy registry relay render replay repo repository resolver restart retention ring
rollback router routers runtime sandbox scheduler schema script sdk secret selector sender
sensor sequence serializer shard shards sidecar signature sink slot socket spec spillover
splitter spool standby storage subscriber subsystem swap sync table tenant tenants terminal
thread throttling token tokens topic topics transaction transactions transport tunnel
validator vendor volume waterfall webhook website wire worker
"""
# Ordinary words met mostly in the compounds below (post-mortem, break-glass, blast-radius).
_BOUND_WORDS = """
mortem fan az band break breaker dead facing flight glass hand opt party privilege radius
stand term war well zero
"""

ORDINARY_WORDS = _words(
    _FUNCTION_WORDS + _RELIABILITY_WORDS + _GENERAL_WORDS + _SYSTEM_WORDS + _BOUND_WORDS
)
NUMBER_WORDS = _words("one two three four five six seven eight nine ten twelve single double")
# Words that form an adjective or a verb with an ordinary word: never a name.
PREFIXES = _words(
    "non re pre post multi cross co de un sub self semi anti auto over under inter intra mid out "
    "in up"
)
SUFFIXES = _words(
    "wide level facing based related driven bound heavy aware safe only free specific side "
    "critical sensitive induced scoped owned managed backed dependent like first native ready "
    "tolerant proof friendly intensive wise"
)
_COMPOUNDS = """
on-call on-calls follow-up follow-ups read-only read-write read-heavy write-heavy rate-limit
rate-limits rate-limited rate-limiting roll-back rolled-back roll-forward roll-out rolled-out
fail-over failed-over fall-back post-mortem post-mortems real-time third-party health-check
health-checks status-page status-update status-updates end-to-end well-known up-to-date
load-balancer load-balancers circuit-breaker circuit-breakers back-pressure write-ahead
read-replica read-replicas in-flight user-facing customer-facing error-budget error-rate
error-rates time-out time-outs hot-fix sign-off hand-off war-room all-hands
first-line second-line top-level high-level low-level day-to-day built-in opt-in opt-out
feature-flag feature-flags log-in sign-in set-up go-live cut-over clean-up break-glass
long-running short-lived long-lived least-privilege single-point point-in-time zero-downtime
blue-green peak-time off-peak data-quality in-memory out-of-band out-of-memory
connection-pool connection-pools connection-error connection-errors slow-query slow-queries
dead-letter at-least-once exactly-once hard-coded well-tested stand-by hot-standby
warm-standby cold-start cache-miss cache-misses cache-hit replication-lag load-test
load-tests load-testing short-term long-term medium-term near-term what-if root-cause
failure-mode failure-modes blast-radius step-by-step one-off one-time fan-out fan-in
scale-out scale-up scale-in heads-up critical-path hot-path control-plane data-plane
service-level double-check single-threaded time-to-detect time-to-recover
"""
COMMON_COMPOUNDS = _words(_COMPOUNDS)
# Capitalised words that are not names: acronyms of the trade (compared in capitals).
ACRONYMS = _words(
    """
    API CPU GPU RAM DNS CDN HTTP HTTPS HTTP2 TLS SSL TCP UDP IP IPV4 IPV6 VPN VPC LB AZ DB SQL
    JSON YAML CSV URL URI ID UUID UI UX SDK CLI CI CD QA SLO SLA SLI SRE RCA IC ETA MTTR MTTD
    MTTA MTBF RPO RTO OOM GC IO IOPS QPS RPS TPS TTL KPI PR UTC GMT AM PM ASAP FYI TBD OK ACL
    IAM MFA SSO PII DDOS WAF BGP NTP SMTP SMS OS VM CRUD SSD HDD NIC LAN WAN NAT NOC SOC DR
    HA ETL CVE SEV US EU UK
    """
)
# Capitalised phrases of incident response and HTTP: roles and status texts, not names.
PHRASES = _words(
    """
    incident commander|deputy incident commander|communications lead|comms lead|technical lead
    |tech lead|operations lead|ops lead|incident lead|subject matter expert
    |subject matter experts|status page|customer support|incident response
    |site reliability engineering|service unavailable|bad gateway|gateway timeout
    |internal server error|too many requests|not found|request timeout|error budget
    |root cause analysis|post incident review|service level objective|on call engineer
    |site reliability engineer|site reliability engineers|engineering manager|incident manager
    |database administrator|release manager|war room
    """,
    "|",
)
# Nouns after which a word is used as a name ("the ledger service", "Billing on-call").
NAME_NOUNS = _words(
    """
    service microservice team squad cluster database db queue topic bucket stream pipeline
    gateway api app application job worker store cache proxy broker on-call oncall rotation
    project repo repository platform system
    """
)
LABEL_FIELDS = frozenset({"title", "role"})  # title case is the custom there


# ---------------------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class Vocabulary:
    """What a narrative may name, link, count and date: taken once from the facts."""

    names: frozenset[str]  # lower case
    words: frozenset[str]  # the names and the words they are made of ("redis", "primary")
    urls: frozenset[str]
    numbers: frozenset[float]
    dates: frozenset[str]
    phrases: re.Pattern[str] | None  # names with spaces or symbols, masked before checking

    @classmethod
    def of(
        cls, document: dict[str, Any], inputs: dict[str, Any], minutes: Iterable[int] = ()
    ) -> Vocabulary:
        """From the prompt document (what the model saw), the whole topology's names in
        `inputs`, and the narrative's own inject minutes."""
        strings = list(structured_strings(document))
        names = {*inputs.get("services", []), *FAILURE_MODES, *SEVERITIES, *strings}
        names |= {*inputs.get("owners", {}).values(), *inputs.get("oncall", {}).values()}
        lowered = {str(n).strip().lower() for n in names if str(n).strip()}
        urls = {*inputs.get("runbooks", {}).values(), *(u for s in strings for u in URL.findall(s))}
        numbers, dates = _facts_numbers(document)
        return cls(
            names=frozenset(lowered),
            words=frozenset(lowered | {w for n in lowered if "://" not in n for w in _parts(n)}),
            urls=frozenset(urls),
            numbers=frozenset(numbers | {float(m) for m in minutes}),
            dates=frozenset(dates),
            phrases=_phrases(n for n in lowered if "://" not in n),
        )

    def knows(self, word: str) -> bool:
        """A name of the facts, in any case, plural or possessive ("Checkout", "payment",
        "api-gateway's")."""
        return any(form in self.names for form in _name_forms(word))

    def knows_word(self, word: str) -> bool:
        """A name of the facts or a word of one ("Redis" of redis-cache): fine as a word,
        though an identifier must be a whole name."""
        return any(form in self.words for form in _name_forms(word))


def _parts(name: str) -> list[str]:
    return re.split(r"[\s_.-]+", name)


def _phrases(names: Iterable[str]) -> re.Pattern[str] | None:
    """Names that are not single tokens ("Black Friday", "storage and virtual machines"),
    longest first."""
    spaced = sorted((n for n in names if not re.fullmatch(r"[\w.'’-]+", n)), key=len)
    if not spaced:
        return None
    return re.compile(
        "|".join(rf"(?<!\w){re.escape(n)}(?!\w)" for n in reversed(spaced)), re.IGNORECASE
    )


def structured_strings(tree: Any) -> Iterator[str]:
    """The document's keys and string values, leaving out free text (FREE_TEXT_KEYS)."""
    if isinstance(tree, dict):
        for name, value in tree.items():
            yield str(name)
            if name not in FREE_TEXT_KEYS:
                yield from structured_strings(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from structured_strings(item)
    elif isinstance(tree, str):
        yield tree


def json_nodes(tree: Any) -> Iterator[Any]:
    """Every node of a JSON tree, depth first, the containers before what they hold."""
    yield tree
    children = tree.values() if isinstance(tree, dict) else tree if isinstance(tree, list) else ()
    for child in children:
        yield from json_nodes(child)


def _facts_numbers(document: dict[str, Any]) -> tuple[set[float], set[str]]:
    """Every number of the facts, also as a percentage, in hours and in days; counts to ten
    ("1 in 10"); every date written in them."""
    numbers: set[float] = set(range(0, 11))
    dates: set[str] = set()
    for node in json_nodes(document):
        if isinstance(node, int | float) and not isinstance(node, bool):
            value = float(node)
            numbers.update({value, value * 100, value / 60, value / 1440})
        elif isinstance(node, str):
            dates.update(DATE.findall(node))
            for whole, decimals in NUMBER.findall(node):
                numbers.add(float(whole.replace(",", "") + decimals))
    return numbers, dates


def _name_forms(word: str) -> set[str]:
    base = _unpossessive(word.lower())
    forms = {base, base + "s", base + "es", base.replace(" ", "-"), base.replace("-", " ")}
    if base.endswith("s"):
        forms.add(base[:-1])
    if base.endswith("es"):
        forms.add(base[:-2])
    return forms


def _unpossessive(word: str) -> str:
    if word.endswith(("'s", "’s")):
        return word[:-2]
    return word[:-1] if word.endswith(("'", "’")) else word


# ---------------------------------------------------------------------------- ordinary prose


def is_ordinary(word: str) -> bool:
    """An ordinary word, in any inflection ("fails", "degraded", "retries")."""
    return any(stem in ORDINARY_WORDS for stem in _stems(_unpossessive(word.lower())))


def _stems(word: str) -> set[str]:
    stems = {word}
    for suffix, replacements in (
        ("ies", ("y",)),
        ("es", ("", "e")),
        ("s", ("",)),
        ("ed", ("", "e")),
        ("ing", ("", "e")),
        ("ly", ("",)),
        ("er", ("", "e")),
        ("ers", ("", "e")),
    ):
        if word.endswith(suffix) and len(word) > len(suffix) + 1:
            root = word[: -len(suffix)]
            stems |= {root + r for r in replacements}
            if len(root) > 2 and root[-1] == root[-2]:  # stopped, running
                stems.add(root[:-1])
    return stems


def is_acronym(word: str) -> bool:
    upper = _unpossessive(word).upper()
    return upper in ACRONYMS or (upper.endswith("S") and upper[:-1] in ACRONYMS)


def is_ordinary_compound(word: str, vocabulary: Vocabulary) -> bool:
    """A hyphenated word of prose: listed, or a prefix or suffix on an ordinary word or a
    name ("non-critical", "zone-wide", "checkout-related"), or a count of a unit
    ("30-minute")."""
    lowered = _unpossessive(word.lower())
    if lowered in COMMON_COMPOUNDS or lowered in ABBREVIATIONS:
        return True
    parts = lowered.split("-")
    if len(parts) != 2 or not all(parts):
        return False
    first, second = parts
    if first in PREFIXES:
        return plain(second, vocabulary)
    if second in SUFFIXES:
        return plain(first, vocabulary)
    is_count = first in NUMBER_WORDS or re.fullmatch(r"\d+(?:\.\d+)?", first)
    return bool(is_count) and is_ordinary(second)


def plain(word: str, vocabulary: Vocabulary) -> bool:
    """Ordinary prose, an acronym, or a word of the facts' names: fine wherever a word
    stands alone."""
    return is_ordinary(word) or is_acronym(word) or vocabulary.knows_word(word)


# ---------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int
    sentence_start: bool
    kind: str  # number, quantity, identifier, acronym, capitalised or word (see _kind)


def _kind(text: str) -> str:
    word = _unpossessive(text)
    if word.isalpha() and word.islower():
        return "word"
    letters = [c for c in word if c.isalpha()]
    if not letters:
        return "number"
    if QUANTITY.fullmatch(word):
        return "quantity"
    capitals = sum(c.isupper() for c in letters)
    if is_acronym(word) and capitals > 1:
        return "acronym"
    if SEPARATOR.search(word) or re.search(r"[a-z][A-Z]", word) or any(c.isdigit() for c in word):
        return "identifier"
    core = word[:-1] if word.endswith("s") else word  # APIs, SLOs
    if sum(c.isalpha() for c in core) > 1 and core.isupper():
        return "acronym"
    return "capitalised" if word[0].isupper() else "word"


def grounding_errors(
    narrative: Narrative, document: dict[str, Any], inputs: dict[str, Any]
) -> list[str]:
    """What the narrative states that the facts do not: names outside the facts'
    vocabulary, URLs that are not runbooks, numbers and dates that are none of the facts'
    (the injects' minutes are its own). `document` is the prompt document the model saw."""
    vocabulary = Vocabulary.of(document, inputs, (i.minute for i in narrative.injects))
    errors: set[str] = set()
    for field, text in fields(narrative):
        errors.update(text_errors(text, vocabulary, label=field in LABEL_FIELDS))
    return sorted(errors)


def fields(narrative: Narrative) -> Iterator[tuple[str, str]]:
    """Every text of a narrative, with the name of its field."""
    yield "title", narrative.title
    yield "narrative", narrative.narrative
    yield "predicted_impact", narrative.predicted_impact
    for inject in narrative.injects:
        yield "event", inject.event
        yield "observed", inject.observed
    for signal in narrative.detection_signals:
        yield "detection_signals", signal
    mitigations = narrative.mitigations
    for step in (*mitigations.immediate, *mitigations.short_term, *mitigations.long_term):
        yield "mitigations", step
    for item in narrative.checklist:
        yield "role", item.role
        yield "action", item.action
    for question in narrative.facilitator_questions:
        yield "facilitator_questions", question


def text_errors(text: str, vocabulary: Vocabulary, label: bool = False) -> list[str]:
    """The grounding errors of one text; `label`: a title or role, where title case is
    usual."""
    errors = _url_errors(text, vocabulary)
    prose = URL.sub(" ", text)
    if vocabulary.phrases is not None:
        prose = vocabulary.phrases.sub(lambda m: " " * len(m.group(0)), prose)
    tokens = _tokens(prose)
    errors += _quoted_errors(prose, vocabulary)
    errors += _identifier_errors(tokens, vocabulary)
    errors += _capital_errors(tokens, prose, vocabulary, label)
    errors += _noun_errors(tokens, prose, vocabulary)
    errors += _number_errors(prose, tokens, vocabulary)
    return sorted(set(errors))


def _tokens(text: str) -> list[Token]:
    """The words of a text, each knowing whether it starts a sentence (after . ! ? : or a
    line break, not after "e.g.")."""
    tokens: list[Token] = []
    for match in TOKEN.finditer(text):
        previous = tokens[-1] if tokens else None
        gap = text[previous.end if previous else 0 : match.start()].rstrip(OPENERS)
        start = previous is None and not gap
        if previous is not None and gap and gap[-1] in ".!?:\n":
            start = previous.text.lower() not in ABBREVIATIONS
        word = match.group(0)
        tokens.append(Token(word, match.start(), match.end(), start, _kind(word)))
    return tokens


def _url_errors(text: str, vocabulary: Vocabulary) -> list[str]:
    return [
        f"names the URL {url!r}, which is not a runbook in the facts"
        for url in URL.findall(text)
        if url.rstrip(".,;:") not in vocabulary.urls
    ]


def _name_error(name: str) -> str:
    return f"names {name!r}, {NOT_IN_FACTS}"


def _quoted_errors(text: str, vocabulary: Vocabulary) -> list[str]:
    """A word in backticks is code: a whole name of the facts or a number; a single word in
    quotes is used as a name unless it is plain prose."""
    errors = []
    for match in QUOTED.finditer(text):
        code, quoted = match.group(1), match.group(2) or match.group(3)
        content = (code or quoted or "").strip(" .,;:!?")
        if not content or vocabulary.knows(content) or re.fullmatch(r"[\d.,%]+", content):
            continue
        if code is not None or (" " not in content and not _prose_word(content, vocabulary)):
            errors.append(_name_error(content))
    return errors


def _prose_word(word: str, vocabulary: Vocabulary) -> bool:
    return (
        plain(word, vocabulary)
        or is_ordinary_compound(word, vocabulary)
        or bool(QUANTITY.fullmatch(word))
    )


def _identifier_errors(tokens: list[Token], vocabulary: Vocabulary) -> list[str]:
    """Identifiers and all-capitals words: names unless the facts' or listed prose."""
    errors = []
    for token in tokens:
        if token.kind not in ("identifier", "acronym") or vocabulary.knows(token.text):
            continue
        if token.kind == "identifier" and is_ordinary_compound(token.text, vocabulary):
            continue
        if token.kind == "acronym" and plain(token.text, vocabulary):
            continue
        errors.append(_name_error(_unpossessive(token.text)))
    return errors


def _capital_errors(
    tokens: list[Token], text: str, vocabulary: Vocabulary, label: bool
) -> list[str]:
    """Capitalised words used as names: runs of them ("Project Phoenix") and single ones
    ("Atlas") that do not start a sentence."""
    errors = []
    for run in _capital_runs(tokens, text):
        if run[0].sentence_start and (is_ordinary(run[0].text) or len(run) == 1):
            run = run[1:]  # an ordinary word starting a sentence: capitalised for that
        if not run:
            continue
        words = [t.text for t in run]
        if len(run) == 1:
            allowed = plain(words[0], vocabulary)
        else:
            allowed = _allowed_run(words, vocabulary, label)
        if not allowed:
            errors.append(_name_error(" ".join(_unpossessive(w) for w in words)))
    return errors


def _capital_runs(tokens: list[Token], text: str) -> list[list[Token]]:
    runs: list[list[Token]] = []
    for token in tokens:
        if token.kind != "capitalised":
            continue
        previous = runs[-1][-1] if runs else None
        if previous is not None and text[previous.end : token.start] == " ":
            runs[-1].append(token)
        else:
            runs.append([token])
    return runs


def _allowed_run(words: list[str], vocabulary: Vocabulary, label: bool) -> bool:
    phrase = " ".join(_unpossessive(w) for w in words)
    if vocabulary.knows(phrase) or phrase.lower() in PHRASES:
        return True
    if all(vocabulary.knows_word(w) for w in words):
        return True
    return label and all(plain(w, vocabulary) for w in words)


def _noun_errors(tokens: list[Token], text: str, vocabulary: Vocabulary) -> list[str]:
    """The word before a component noun, unless judged above: "the ledger service"."""
    errors = []
    for before, noun in itertools.pairwise(tokens):
        if not _is_name_noun(noun.text) or text[before.end : noun.start].strip():
            continue
        if before.kind not in ("word", "capitalised") or (
            before.kind == "capitalised" and not before.sentence_start
        ):
            continue
        if not plain(before.text, vocabulary):
            errors.append(f"names {before.text + ' ' + noun.text!r}, {NOT_IN_FACTS}")
    return errors


def _is_name_noun(word: str) -> bool:
    lowered = _unpossessive(word.lower())
    return lowered in NAME_NOUNS or (lowered.endswith("s") and lowered[:-1] in NAME_NOUNS)


def _number_errors(text: str, tokens: list[Token], vocabulary: Vocabulary) -> list[str]:
    errors = [
        f"states the date {day}, which is not in the facts"
        for day in DATE.findall(text)
        if day not in vocabulary.dates
    ]
    for pattern in (DATE, HTTP_CODE, JARGON):
        text = pattern.sub(lambda m: " " * len(m.group(0)), text)
    for token in tokens:  # names and identifiers hold no numbers of the facts ("svc-00012")
        if token.kind not in ("number", "quantity") and not token.text[0].isdigit():
            text = text[: token.start] + " " * (token.end - token.start) + text[token.end :]
    for whole, decimals in NUMBER.findall(text):
        value = float(whole.replace(",", "") + decimals)
        if not _matches(value, len(decimals) - 1 if decimals else 0, vocabulary.numbers):
            errors.append(
                f"states the number {whole}{decimals}, which is none of the facts' numbers"
            )
    return errors


def _matches(value: float, decimals: int, allowed: Iterable[float]) -> bool:
    """The stated value is an allowed one rounded to the decimals stated, or to one or two
    significant figures ("about 40 minutes" for 38.2)."""
    for candidate in allowed:
        if abs(round(candidate, decimals) - value) < 1e-9:
            return True
        if candidate and any(
            abs(float(f"{candidate:.{digits}g}") - value) < 1e-9 for digits in (1, 2)
        ):
            return True
    return False
