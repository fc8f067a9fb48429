"""A synthetic long-term conversation set for the recall benchmark (deterministic for a seed).

One user talks with the assistant over ~8 months in many sessions about everyday topics. Planted in
the chatter are facts the user later asks about:
- single:     a fact said once ("my sister Clara started as a nurse"), asked in other words;
- update:     a fact that changes ("I drive a Civic" -> months later "sold it, got a Model 3"),
              asked as "now": only the latest statement is the evidence;
- two_session: a question that needs two statements from two different sessions;
- date:       "what did I cook on 14 March?": the evidence shares little but the date;
- assistant:  "which hotel did you recommend in Lisbon?": the answer is in the assistant's turn,
              right after the user's request that names the topic.
Distractors reuse the same words (other people's jobs, other meals, other trips), so word overlap
alone is not enough.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


@dataclass
class Turn:
    id: str
    session_id: str
    role: str
    text: str
    at: datetime


@dataclass
class Question:
    qtype: str
    text: str
    evidence: list[str]
    asked_at: datetime


@dataclass
class Dataset:
    turns: list[Turn] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)


NAMES = ["Clara", "Tom", "Priya", "Marco", "Yuki", "Ines", "Omar", "Lena", "Jonas", "Ana", "Felix", "Sofia",
         "Ravi", "Nora", "Hugo", "Maya"]
CITIES = ["Lisbon", "Kyoto", "Oslo", "Porto", "Seville", "Krakow", "Vienna", "Dublin", "Seoul", "Bergen",
          "Tallinn", "Bologna"]
DISHES = ["mushroom risotto", "lentil curry", "shakshuka", "beef stew", "pad thai", "gnocchi", "paella",
          "ramen", "moussaka", "falafel", "lasagna", "tom yum soup"]
JOBS = ["nurse", "architect", "data analyst", "pastry chef", "physiotherapist", "librarian", "pilot",
        "teacher", "electrician", "journalist"]
CARS = ["Honda Civic", "Toyota Corolla", "VW Golf", "Tesla Model 3", "Mazda CX-5", "Kia Niro", "Skoda Octavia"]
HOTELS = ["Casa Azul", "Hotel Lumen", "The Grey Heron", "Pension Sol", "Villa Marea", "Hostel Norte"]
PETS = ["Biscuit", "Pepper", "Miso", "Juniper", "Waffles", "Pickle", "Nimbus"]
SPORTS = ["bouldering", "swimming", "yoga", "tennis", "cycling", "running"]
BOOKS = ["The Overstory", "Piranesi", "Dune", "Middlemarch", "The Remains of the Day", "Klara and the Sun"]

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
PLACES = ["the station", "the old town", "the office", "the park", "the market", "the harbour", "the gym"]
# Everyday chatter with slots: it shares the planted facts' words (sister, job, car, hotel, cook, book,
# routine, manager, birthday, days...) without repeating itself word for word.
FILLER_USER = [
    "I had a long day at work, the meeting with {name} ran late again.",
    "Can you help me plan meals for this week? I want to cook more at home, maybe {dish}.",
    "My sister called me about her weekend plans, she wants to go hiking near {city}.",
    "I'm thinking about a trip to {city} in the spring, a few days of good food.",
    "The car needs new tyres before winter, I keep putting it off since {day}.",
    "I started reading {book} but I can't get into it.",
    "{name} asked me for restaurant recommendations near {place}.",
    "I want to get back into a regular exercise routine, maybe {sport} on {day}s.",
    "Work is busy, my manager wants the quarterly report by {day}.",
    "I'm trying to save money this month, {name} says I should track every expense.",
    "We finally fixed the leaking kitchen tap, it took all of {day} afternoon.",
    "My neighbour's dog keeps barking at night, {name} says I should talk to them.",
    "I need a birthday gift idea for {name}, who loves {sport}.",
    "The hotel we stayed at in {city} had terrible wifi.",
    "I cooked dinner for {name} and {name2} and it went surprisingly well.",
    "I'm learning Spanish with an app, {n} minutes a day.",
    "My brother is moving to a new flat near {place} and asked me to help carry boxes.",
    "I want to try a new recipe with lots of vegetables, something like {dish}.",
    "Do you think I should take the train or drive to {city}?",
    "My job has been stressful lately, {n} deadlines this month.",
    "{name} recommended a hotel by {place}, but it was fully booked.",
    "I spent the whole {day} cleaning the flat, it needed it.",
    "My friend {name} just started a new job as a {job}, she sounds happy.",
    "My car made a weird noise on the way to {place} this morning.",
    "I'm cooking {dish} for the team lunch on {day}, wish me luck.",
    "The book club meets on {day}, I haven't finished {book} yet.",
    "I skipped {sport} this week, my knee was sore.",
    "{name} says the new manager on their team is very strict.",
    "We're planning a few days away in {city} for {name}'s birthday.",
    "I'm reading reviews of hotels in {city}, they all look the same.",
]
FILLER_ASSISTANT = [
    "That sounds like a lot. Would it help to block some quiet time on {day}?",
    "Here are a few ideas: a vegetable stir-fry, a bean chili, or {dish}.",
    "{city} is lovely in spring: mild weather and great food markets.",
    "A simple budget rule is 50/30/20: needs, wants and savings.",
    "You could start with {n} short workouts a week and build up from there.",
    "Trains are often more relaxing for city trips, and you can read on the way to {city}.",
    "A good birthday gift could be a nice notebook or a voucher for a restaurant near {place}.",
    "{n} minutes a day is a great habit; consistency matters more than length.",
    "Before winter it's worth checking tyre tread depth and pressure on your car.",
    "Would you like me to make a shopping list for {dish}?",
    "Hiking is a great weekend plan; check the weather and pack layers.",
    "If {book} doesn't grab you after fifty pages, it's fine to switch.",
    "For a hotel in {city}, look for one near {place} with recent reviews.",
    "It might help to talk to your manager about the deadlines before {day}.",
    "{sport} is a good choice for a weekly routine; rest days matter too.",
]


def _fill(template: str, rnd: random.Random) -> str:
    name, name2 = rnd.sample(NAMES, 2)
    return template.format(name=name, name2=name2, city=rnd.choice(CITIES), dish=rnd.choice(DISHES),
                           day=rnd.choice(DAYS), n=rnd.randint(2, 30), book=rnd.choice(BOOKS),
                           sport=rnd.choice(SPORTS), place=rnd.choice(PLACES), job=rnd.choice(JOBS))


def build(seed: int = 13, sessions: int = 120) -> Dataset:
    rnd = random.Random(seed)
    start = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)
    days = sorted(rnd.sample(range(0, max(240, 2 * sessions)), sessions))  # one session a day at most
    session_times = [start + timedelta(days=d, hours=rnd.randint(0, 11), minutes=rnd.randint(0, 59)) for d in days]
    # each session: a list of (role, text) with optional markers for planted turns
    plan: list[list[tuple[str, str, str | None]]] = [[] for _ in range(sessions)]
    for s in range(sessions):
        for _ in range(rnd.randint(3, 6)):
            plan[s].append(("user", _fill(rnd.choice(FILLER_USER), rnd), None))
            plan[s].append(("assistant", _fill(rnd.choice(FILLER_ASSISTANT), rnd), None))
    questions: list[tuple[str, str, list[str], int | None]] = []  # (type, text, markers, asked-after-session)
    counter = iter(range(10**6))

    def plant(s: int, role: str, text: str, pos: int | None = None) -> str:
        marker = f"m{next(counter)}"
        turns = plan[s]
        pos = rnd.randrange(0, len(turns) + 1, 2) if pos is None else pos
        turns.insert(pos, (role, text, marker))
        return marker

    def plant_pair(s: int, user_text: str, assistant_text: str) -> tuple[str, str]:
        pos = rnd.randrange(0, len(plan[s]) + 1, 2)
        a = plant(s, "assistant", assistant_text, pos)
        u = plant(s, "user", user_text, pos)
        return u, a

    names = rnd.sample(NAMES, len(NAMES))
    # ---- single facts -------------------------------------------------------------------------
    singles = [
        (lambda n, v: f"Oh, big news: my sister {n} just started working as a {v} in town.",
         lambda n, v: "What is my sister's new job?", JOBS,
         lambda n, v: rnd.choice([f"My cousin wants a new job as a {rnd.choice(JOBS)}, she talks about it a lot.",
                                  f"My sister's friend {n} got a new job at the hospital last month.",
                                  "What's a good job for someone who likes people? My sister keeps asking."])),
        (lambda n, v: f"My best friend {n} is allergic to peanuts, so I always check menus when we eat out.",
         lambda n, v: f"What is {n} allergic to?", ["peanuts"],
         lambda n, v: rnd.choice([f"{n} is allergic to cats, so we never meet at my place.",
                                  "My best friend hates cilantro, we always check menus when we eat out.",
                                  f"Is it common to be allergic to {rnd.choice(['shellfish', 'pollen', 'dust'])}?"])),
        (lambda n, v: f"We adopted a rescue kitten last weekend and named her {v}.",
         lambda n, v: "What did we name the kitten we adopted?", PETS,
         lambda n, v: rnd.choice([f"My neighbour adopted a puppy, they named it {rnd.choice(PETS)}.",
                                  "We talked about adopting a kitten but the landlord said no pets.",
                                  f"{n} named her new bike {rnd.choice(PETS)}, which is a bit silly."])),
        (lambda n, v: f"I finally signed up for {v} classes on Tuesday evenings at the community centre.",
         lambda n, v: "Which classes did I sign up for at the community centre?", SPORTS,
         lambda n, v: rnd.choice(["The community centre also has pottery classes, but they're always full.",
                                  f"{n} signed up for {rnd.choice(SPORTS)} classes, she loves it.",
                                  "I signed up for the newsletter of the community centre."])),
        (lambda n, v: f"My book club picked {v} for next month, I'm halfway through it already.",
         lambda n, v: "What book did my book club pick?", BOOKS,
         lambda n, v: rnd.choice([f"I gave my old copy of {rnd.choice(BOOKS)} to a charity shop.",
                                  f"{n}'s book club picked {rnd.choice(BOOKS)}, she didn't like it.",
                                  "The book club is thinking about meeting at the library next month."])),
        (lambda n, v: f"My favourite coffee place is a tiny cafe called {n}'s Corner near the office.",
         lambda n, v: "What's the name of my favourite coffee place?", ["x"],
         lambda n, v: rnd.choice(["The coffee at the office is awful, I bring my own beans now.",
                                  f"{n}'s favourite place for coffee is the bakery by the station.",
                                  "What's the best way to store coffee beans? My favourite ones go stale."])),
        (lambda n, v: f"My grandmother turns {v} in June, we're planning a party for her.",
         lambda n, v: "How old is my grandmother turning?", ["eighty", "ninety", "eighty-five", "ninety-two"],
         lambda n, v: rnd.choice(["My grandfather used to plan big parties for every birthday.",
                                  f"{n}'s grandmother is turning {rnd.choice(['seventy', 'eighty'])} soon.",
                                  "We're planning a party in June for my parents' anniversary."])),
        (lambda n, v: f"I use a standing desk now, my physio {n} said it would help my back pain.",
         lambda n, v: "Who suggested I use a standing desk?", ["x"],
         lambda n, v: rnd.choice(["My back is a bit better since I stretch before work.",
                                  f"{n} uses a standing desk at work and swears by it.",
                                  "Do you think a standing desk is worth the money?"])),
    ]
    for k, (say, ask, values, distract) in enumerate(singles):
        n, v = names[k % len(names)], rnd.choice(values)
        s = rnd.randrange(0, sessions - 10)
        m = plant(s, "user", say(n, v))
        for _ in range(6):
            plant(rnd.randrange(sessions), "user", distract(names[rnd.randrange(len(names))], v))
        questions.append(("single", ask(n, v), [m], None))
    # ---- facts that change --------------------------------------------------------------------
    updates = [
        (lambda a: f"My car is a {a} at the moment, it's reliable enough.",
         lambda a, b: f"Sold the {a} this week, my new car is a {b}!",
         "What car do I have now?", CARS),
        (lambda a: f"I live in a flat in {a} right now, close to the old town.",
         lambda a, b: f"The move is done: we live in {b} now, in a bigger flat.",
         "Which city do I live in now?", CITIES),
        (lambda a: f"At work I'm the team lead for the {a} project.",
         lambda a, b: f"I got moved off {a}; I'm leading the {b} project from now on.",
         "Which project am I leading at work now?", ["Atlas", "Beacon", "Cobalt", "Delta", "Ember"]),
        (lambda a: f"My gym routine is {a} three times a week.",
         lambda a, b: f"I switched my routine: {b} three times a week instead of {a}.",
         "What is my current weekly exercise routine?", SPORTS),
        (lambda a: f"My manager is {a}, she's been great so far.",
         lambda a, b: f"{a} left the company, so my new manager is {b}.",
         "Who is my manager now?", NAMES),
        (lambda a: f"I'm reading {a} before bed these days.",
         lambda a, b: f"I gave up on {a}, now I'm reading {b} before bed.",
         "What book am I reading before bed now?", BOOKS),
    ]
    for say_a, say_b, ask, values in updates:
        a, b = rnd.sample(values, 2)
        s1 = rnd.randrange(0, sessions // 2)
        s2 = rnd.randrange(s1 + 5, sessions - 2)
        plant(s1, "user", say_a(a))
        m = plant(s2, "user", say_b(a, b))
        questions.append(("update", ask, [m], None))
    # ---- two-session questions ----------------------------------------------------------------
    trips = rnd.sample(CITIES, 8)
    for i in range(0, 8, 2):
        c1, c2 = trips[i], trips[i + 1]
        d1, d2 = rnd.randint(3, 9), rnd.randint(3, 9)
        s1 = rnd.randrange(0, sessions // 2)
        s2 = rnd.randrange(sessions // 2, sessions - 2)
        m1 = plant(s1, "user", f"Just got back from {d1} days in {c1}, the food was amazing.")
        m2 = plant(s2, "user", f"I spent {d2} days in {c2} last week, mostly walking around.")
        plant(rnd.randrange(sessions), "user", f"Someday I'd love to spend a few days in {rnd.choice(CITIES)}.")
        questions.append(("two_session", f"How many days did I spend in {c1} and {c2} in total?", [m1, m2], None))
    givers = rnd.sample(NAMES, 8)  # eight different people: each question has one true answer
    for i in range(4):
        p1, p2 = givers[2 * i], givers[2 * i + 1]
        s1 = rnd.randrange(0, sessions // 2)
        s2 = rnd.randrange(sessions // 2, sessions - 2)
        g1, g2 = rnd.sample(["a scarf", "a board game", "a plant", "concert tickets", "a cookbook", "a watch"], 2)
        m1 = plant(s1, "user", f"For {p1}'s birthday I bought {g1}, hope they like it.")
        m2 = plant(s2, "user", f"I got {g2} for {p2}'s birthday present.")
        questions.append(("two_session", f"What birthday presents did I buy for {p1} and {p2}?", [m1, m2], None))
    # ---- date questions -----------------------------------------------------------------------
    date_sessions = rnd.sample(range(5, sessions - 1), 12)
    meals = rnd.sample(DISHES, 12)
    for s, dish in zip(date_sessions, meals, strict=True):
        m = plant(s, "user", f"For dinner tonight I cooked {dish} from scratch, it turned out well.")
        when = session_times[s]
        ask = rnd.choice([f"What did I cook on {when.day} {when:%B}?",
                          f"What did I make for dinner on {when:%B} {when.day}?"])
        questions.append(("date", ask, [m], None))
    for dish in rnd.sample(DISHES, 6):  # cooking talk on other days: same words, wrong dates
        plant(rnd.randrange(sessions), "user", f"I'd like to cook {dish} again soon, I made it from scratch once.")
    # ---- what the assistant said --------------------------------------------------------------
    asks = [
        (lambda c: f"Can you recommend a hotel in {c} for a weekend trip?",
         lambda c, h: f"In that case I'd suggest {h}: central, quiet rooms and a good breakfast.",
         lambda c: f"Which hotel did you recommend for my weekend in {c}?", HOTELS),
        (lambda c: f"Could you suggest a name for my {c} sourdough starter?",
         lambda c, h: f"How about '{h}'? It sounds friendly and a bit bubbly.",
         lambda c: f"What name did you suggest for my {c} sourdough starter?", PETS),
        (lambda c: f"What wine would go with {c} tonight?",
         lambda c, h: f"A {h} would pair nicely: fresh acidity and not too heavy.",
         lambda c: f"Which wine did you suggest to go with {c}?",
         ["Albarino", "Pinot Noir", "Chianti", "Gruner Veltliner", "Rioja"]),
        (lambda c: f"I want to start {c}, what gear do I need as a beginner?",
         lambda c, h: f"To begin you mainly need {h}; everything else can wait until you're hooked.",
         lambda c: f"What beginner gear did you say I need for {c}?",
         ["good shoes and a chalk bag", "a pair of goggles and a swim cap", "a mat and a strap",
          "a helmet and lights"]),
    ]
    topics = {0: CITIES, 1: ["rye", "wholewheat", "spelt"], 2: DISHES, 3: SPORTS}
    for k, (u, a, q, values) in enumerate(asks):
        for c in rnd.sample(topics[k], 3):
            s = rnd.randrange(0, sessions - 1)
            _, m = plant_pair(s, u(c), a(c, rnd.choice(values)))
            questions.append(("assistant", q(c), [m], None))
    # ---- asked in other words -----------------------------------------------------------------
    # The question shares no content word with its evidence (cat/kitten, sibling/brother, storey/
    # floor), while distractors share the question's words: what public sets call "paraphrase" or
    # "indirect" questions. Planted last so the types above stay the same for a seed.
    paraphrases = [
        (lambda n, v: f"My brother {n} got hired as a {v} at the hospital.",
         "What does my sibling do for a living?", JOBS,
         ["The cost of living in this city is getting silly.", "My cousin does a lot of volunteering now."]),
        (lambda n, v: f"We adopted a kitten in the spring, she's called {v}.",
         "What is the name of my cat?", PETS,
         ["What is the name of that cafe near the station?", "My neighbour's cat sits on our fence every morning."]),
        (lambda n, v: "I can't eat anything with gluten, it makes me really sick.",
         "Do I have any dietary restrictions?", ["x"],
         ["Are there any restrictions on carry-on luggage?", "I have a diet plan from the gym but never follow it."]),
        (lambda n, v: f"I get up at {v} every weekday to beat the traffic.",
         "What time does my alarm go off in the morning?", ["5:30", "6:00", "5:45"],
         ["The fire alarm went off at the office this morning.", "What time does the market open on Sundays?"]),
        (lambda n, v: f"My partner {n} and I have been together for {v} years now.",
         "How long have I been in a relationship?", ["seven", "nine", "three", "five"],
         ["How long should I boil eggs for a salad?", "Our relationship with the landlord is getting tense."]),
        (lambda n, v: f"I commute by {v}, it's about twenty minutes each way.",
         "How do I get to the office?", ["bike", "tram", "scooter"],
         ["How do I get a refund for a cancelled train?", "The office moved to the third floor last month."]),
        (lambda n, v: "I'm scared of flying, so we always take the train on holiday.",
         "Why don't I like planes?", ["x"],
         ["I like the plane trees along the avenue.", "Why don't I ever have time to read?"]),
        (lambda n, v: f"Our flat has no lift and we're on the {v} floor.",
         "Which storey is my apartment on?", ["fourth", "fifth", "sixth"],
         ["Is apartment hunting easier in winter?", "The library is opening a new storey for kids."]),
        (lambda n, v: f"I'm learning to play the {v}, lessons are on Thursdays.",
         "What musical instrument am I studying?", ["cello", "violin", "piano", "trumpet"],
         [f"What instrument does {rnd.choice(NAMES)}'s band need?", "I'm studying for the driving test."]),
        (lambda n, v: "My doctor told me to cut down on coffee because of my blood pressure.",
         "What health advice was I given?", ["x"],
         ["Can you give me advice on buying a laptop?", "Health insurance costs went up again."]),
    ]
    for k, (say, ask, values, distract) in enumerate(paraphrases):
        m = plant(rnd.randrange(0, sessions - 2), "user", say(names[(k + 3) % len(names)], rnd.choice(values)))
        for text in distract * 2:
            plant(rnd.randrange(sessions), "user", text)
        questions.append(("paraphrase", ask, [m], None))
    # ---- materialise --------------------------------------------------------------------------
    ds = Dataset()
    ids: dict[str, str] = {}
    for s, turns in enumerate(plan):
        t = session_times[s]
        for i, (role, text, marker) in enumerate(turns):
            tid = f"t{s:03d}_{i:02d}"
            ds.turns.append(Turn(tid, f"session-{s:03d}", role, text, t + timedelta(minutes=2 * i)))
            if marker:
                ids[marker] = tid
    asked = session_times[-1] + timedelta(days=3)
    for qtype, text, markers, _ in questions:
        ds.questions.append(Question(qtype, text, [ids[m] for m in markers], asked))
    return ds
