"""The built-in questions of the simulated pool, each with a good, a partial and a wrong answer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Question:
    """A prompt with a good, a partial and a wrong answer, and its kind."""

    prompt: str
    good: str
    partial: str
    wrong: str
    kind: str


QUESTIONS: tuple[Question, ...] = (
    Question(
        prompt="What is the capital of France?",
        good="The capital of France is Paris. It is the country's largest city and its "
        "political and cultural centre, home to the national government, the Eiffel Tower "
        "and the Louvre.",
        partial="The capital of France is a large city in the north of the country.",
        wrong="The capital of France is Lyon, which has been the seat of the French "
        "government since the Middle Ages.",
        kind="fact",
    ),
    Question(
        prompt="Who wrote Pride and Prejudice?",
        good="Pride and Prejudice was written by Jane Austen and published in 1813. The "
        "novel follows Elizabeth Bennet and Mr Darcy and is a classic of English literature.",
        partial="It was written by an English novelist in the early nineteenth century.",
        wrong="Pride and Prejudice was written by Charlotte Brontë and published in 1847.",
        kind="fact",
    ),
    Question(
        prompt="Who painted the Mona Lisa?",
        good="The Mona Lisa was painted by Leonardo da Vinci, probably between 1503 and 1519. "
        "It hangs in the Louvre in Paris and is one of the most famous paintings in the world.",
        partial="The Mona Lisa was painted by an Italian artist of the Renaissance.",
        wrong="The Mona Lisa was painted by Michelangelo while he worked on the Sistine Chapel.",
        kind="fact",
    ),
    Question(
        prompt="What is the largest ocean on Earth?",
        good="The Pacific Ocean is the largest ocean on Earth. It covers about 165 million "
        "square kilometres, roughly a third of the planet's surface, and is also the deepest.",
        partial="The largest ocean lies between Asia and the Americas.",
        wrong="The Atlantic Ocean is the largest ocean on Earth, covering half of the planet.",
        kind="fact",
    ),
    Question(
        prompt="When did World War II end?",
        good="World War II ended in 1945. Germany surrendered on 8 May 1945, and Japan signed "
        "its formal surrender on 2 September 1945, which ended the war in the Pacific.",
        partial="World War II ended in the middle of the twentieth century.",
        wrong="World War II ended in 1939 when the Treaty of Versailles was signed.",
        kind="fact",
    ),
    Question(
        prompt="What is the chemical symbol for gold?",
        good="The chemical symbol for gold is Au, from the Latin word aurum. Gold has the "
        "atomic number 79 and is a dense, soft, yellow metal that does not corrode.",
        partial="Gold's chemical symbol comes from its Latin name.",
        wrong="The chemical symbol for gold is Gd.",
        kind="fact",
    ),
    Question(
        prompt="How many planets are in the solar system?",
        good="There are eight planets in the solar system: Mercury, Venus, Earth, Mars, "
        "Jupiter, Saturn, Uranus and Neptune. Pluto was reclassified as a dwarf planet in 2006.",
        partial="There are several planets, including Earth, Mars and Jupiter.",
        wrong="There are twelve planets in the solar system, including Pluto and Ceres.",
        kind="fact",
    ),
    Question(
        prompt="What is the boiling point of water at sea level?",
        good="At sea level, under a standard pressure of 101.325 kPa, water boils at 100 degrees "
        "Celsius, or 212 degrees Fahrenheit. At higher altitudes the pressure is lower, so "
        "water boils at a lower temperature.",
        partial="Water boils when it gets hot enough, at a temperature that depends on pressure.",
        wrong="Water boils at 90 degrees Celsius at sea level and at a higher temperature in "
        "the mountains.",
        kind="science",
    ),
    Question(
        prompt="Why is the sky blue?",
        good="The sky is blue because of Rayleigh scattering. Air molecules scatter shorter "
        "wavelengths of sunlight, such as blue, much more strongly than longer red wavelengths, "
        "so blue light reaches our eyes from every direction of the sky.",
        partial="The sky is blue because of the way sunlight interacts with the air.",
        wrong="The sky is blue because it reflects the colour of the oceans.",
        kind="science",
    ),
    Question(
        prompt="What is photosynthesis?",
        good="Photosynthesis is the process by which plants, algae and some bacteria use "
        "sunlight, water and carbon dioxide to make glucose and release oxygen. It takes place "
        "in the chloroplasts, where chlorophyll captures the light energy.",
        partial="Photosynthesis is how plants use light to grow.",
        wrong="Photosynthesis is the process by which animals turn oxygen into energy in "
        "their lungs.",
        kind="science",
    ),
    Question(
        prompt="What causes the seasons on Earth?",
        good="The seasons are caused by the tilt of Earth's axis, about 23.5 degrees. As Earth "
        "orbits the Sun, each hemisphere is tilted towards the Sun for part of the year, "
        "receiving more direct sunlight and longer days, which brings summer.",
        partial="The seasons have to do with how sunlight reaches different parts of Earth.",
        wrong="The seasons are caused by Earth moving closer to the Sun in summer and farther "
        "away in winter.",
        kind="science",
    ),
    Question(
        prompt="What is the speed of light in a vacuum?",
        good="The speed of light in a vacuum is exactly 299,792,458 metres per second, about "
        "300,000 kilometres per second. Nothing that carries information can travel faster.",
        partial="Light is extremely fast, much faster than sound.",
        wrong="The speed of light in a vacuum is about 150,000 kilometres per second.",
        kind="science",
    ),
    Question(
        prompt="How does a vaccine work?",
        good="A vaccine trains the immune system by exposing it to a harmless piece or weakened "
        "form of a pathogen. The body produces antibodies and memory cells, so if the real "
        "pathogen appears later the immune system can recognise it and respond quickly.",
        partial="A vaccine helps the body protect itself against a disease.",
        wrong="A vaccine works by killing every virus in the body directly, like an antibiotic.",
        kind="science",
    ),
    Question(
        prompt="What is a black hole?",
        good="A black hole is a region of space where gravity is so strong that nothing, not "
        "even light, can escape once it crosses the event horizon. Most form when a massive "
        "star collapses at the end of its life.",
        partial="A black hole is a very dense object in space.",
        wrong="A black hole is an empty gap in space where there is no matter or gravity.",
        kind="science",
    ),
    Question(
        prompt="What is DNA?",
        good="DNA, deoxyribonucleic acid, is the molecule that carries the genetic instructions "
        "of living organisms. It is a double helix of two strands built from four bases, "
        "adenine, thymine, guanine and cytosine, whose order encodes genes.",
        partial="DNA is a molecule found in cells that is related to genetics.",
        wrong="DNA is a protein made in the liver that carries oxygen through the blood.",
        kind="definition",
    ),
    Question(
        prompt="What is machine learning?",
        good="Machine learning is a branch of artificial intelligence in which computers learn "
        "patterns from data instead of following explicitly programmed rules. A model is "
        "trained on examples and then used to make predictions on new data.",
        partial="Machine learning is a way for computers to get better at tasks.",
        wrong="Machine learning is the study of how to build physical machines that assemble "
        "other machines.",
        kind="definition",
    ),
    Question(
        prompt="What is inflation in economics?",
        good="Inflation is the rate at which the general level of prices for goods and services "
        "rises over time, reducing the purchasing power of money. Central banks usually aim "
        "for low and stable inflation, often around 2 percent a year.",
        partial="Inflation is when things become more expensive.",
        wrong="Inflation is the rise in the value of money, so the same amount buys more "
        "goods over time.",
        kind="definition",
    ),
    Question(
        prompt="What is HTTP?",
        good="HTTP, the Hypertext Transfer Protocol, is the application protocol of the web. "
        "A client sends a request with a method such as GET or POST to a server, which answers "
        "with a status code, headers and a body.",
        partial="HTTP is something used by websites.",
        wrong="HTTP is a programming language used to style web pages.",
        kind="definition",
    ),
    Question(
        prompt="What is the Pythagorean theorem?",
        good="The Pythagorean theorem states that in a right triangle the square of the "
        "hypotenuse equals the sum of the squares of the other two sides: a² + b² = c². For "
        "example, a triangle with sides 3 and 4 has a hypotenuse of 5.",
        partial="The Pythagorean theorem is a rule about triangles.",
        wrong="The Pythagorean theorem states that the angles of any triangle add up to "
        "360 degrees.",
        kind="definition",
    ),
    Question(
        prompt="How do I reverse a list in Python?",
        good="Call my_list.reverse() to reverse the list in place, or use slicing, "
        "my_list[::-1], to get a new reversed list. The built-in reversed(my_list) returns an "
        "iterator over the items in reverse order.",
        partial="Python has a built-in way to reverse lists.",
        wrong="Use my_list.sort(reverse=True), which reverses the order of the items.",
        kind="code",
    ),
    Question(
        prompt="How do I read a file line by line in Python?",
        good="Open the file in a with block and iterate over it: with open(path) as f: then "
        "for line in f: handle the line. This reads one line at a time and closes the file "
        "automatically.",
        partial="You can open the file and loop over it.",
        wrong="Call os.readlines(path), which returns the lines of the file as a list.",
        kind="code",
    ),
    Question(
        prompt="Write a Python function that returns the factorial of n.",
        good="def factorial(n):\n    result = 1\n    for i in range(2, n + 1):\n        "
        "result *= i\n    return result\n\nThe loop multiplies every integer from 2 to n, and "
        "factorial(0) returns 1.",
        partial="A factorial multiplies n by every smaller positive integer, so you can use "
        "a loop.",
        wrong="def factorial(n):\n    return n * (n + 1)\n\nThis returns the factorial of n.",
        kind="code",
    ),
    Question(
        prompt="What is the difference between a list and a tuple in Python?",
        good="A list is mutable, so you can add, remove and change its items, while a tuple is "
        "immutable once created. Tuples are hashable when their items are, so they can be "
        "dictionary keys, and they are written with parentheses instead of brackets.",
        partial="Lists and tuples both hold sequences of items.",
        wrong="A tuple is mutable and a list is immutable, and tuples can only hold numbers.",
        kind="code",
    ),
    Question(
        prompt="How do I center a div in CSS?",
        good="Make the parent a flex container and center the child on both axes: "
        "display: flex; justify-content: center; align-items: center;. With CSS grid, "
        "display: grid; place-items: center; does the same.",
        partial="You can use CSS properties on the parent element to center things.",
        wrong="Add the attribute center=true to the div and the browser will center it.",
        kind="code",
    ),
    Question(
        prompt="How do I make a cup of tea?",
        good="Boil fresh water, put a tea bag or a spoon of loose leaves in a cup, and pour the "
        "hot water over it. Let it steep for three to five minutes, remove the tea, and add "
        "milk, sugar or lemon to taste.",
        partial="Put tea in a cup and add water.",
        wrong="Put a tea bag in cold water and leave it in the fridge for ten seconds.",
        kind="how-to",
    ),
    Question(
        prompt="How do I change a flat tire?",
        good="Park on flat ground and apply the parking brake, loosen the lug nuts, and raise "
        "the car with the jack. Remove the nuts and the flat tire, fit the spare, tighten the "
        "nuts by hand, lower the car, then tighten the nuts fully in a star pattern.",
        partial="Use the jack to lift the car and swap the wheel.",
        wrong="Let the rest of the air out and drive slowly; the tire will reinflate by itself.",
        kind="how-to",
    ),
)
