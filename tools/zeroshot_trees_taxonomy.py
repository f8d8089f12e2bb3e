"""Dataset-native taxonomies: FGVC-Aircraft (variant -> family -> manufacturer) and Stanford Cars (make, body type).

Data for zeroshot_trees.py. FGVC-Aircraft's variant -> family -> manufacturer map is the dataset's own annotation
(``families.txt``, ``manufacturers.txt`` and the per-image variant/family/manufacturer labels of fgvc-aircraft-2013b:
100 variants, 70 families, 30 manufacturers). Family nodes are spelled out with their maker (``Boeing 737``,
``Airbus A320 family``) and get a popular name or `` series`` where the bare family name would repeat a variant name
(a node never equals a leaf).
"""

from __future__ import annotations

# FGVC family -> (display name, manufacturer, role)
AIRCRAFT_FAMILIES: dict[str, tuple[str, str, str]] = {
    "A300": ("Airbus A300", "Airbus", "wide-body airliner"),
    "A310": ("Airbus A310", "Airbus", "wide-body airliner"),
    "A320": ("Airbus A320 family", "Airbus", "narrow-body airliner"),
    "A330": ("Airbus A330", "Airbus", "wide-body airliner"),
    "A340": ("Airbus A340", "Airbus", "wide-body airliner"),
    "A380": ("Airbus A380", "Airbus", "wide-body airliner"),
    "ATR-42": ("ATR 42 series", "ATR", "turboprop airliner"),
    "ATR-72": ("ATR 72 series", "ATR", "turboprop airliner"),
    "An-12": ("Antonov An-12", "Antonov", "military aircraft"),
    "BAE 146": ("BAe 146", "British Aerospace", "regional jet"),
    "BAE-125": ("BAe 125 series", "British Aerospace", "business jet"),
    "Beechcraft 1900": ("Beechcraft 1900 series", "Beechcraft", "turboprop airliner"),
    "Boeing 707": ("Boeing 707", "Boeing", "narrow-body airliner"),
    "Boeing 717": ("Boeing 717 series", "Boeing", "narrow-body airliner"),
    "Boeing 727": ("Boeing 727", "Boeing", "narrow-body airliner"),
    "Boeing 737": ("Boeing 737", "Boeing", "narrow-body airliner"),
    "Boeing 747": ("Boeing 747", "Boeing", "wide-body airliner"),
    "Boeing 757": ("Boeing 757", "Boeing", "narrow-body airliner"),
    "Boeing 767": ("Boeing 767", "Boeing", "wide-body airliner"),
    "Boeing 777": ("Boeing 777", "Boeing", "wide-body airliner"),
    "C-130": ("Lockheed C-130 Hercules", "Lockheed Corporation", "military aircraft"),
    "C-47": ("Douglas C-47 Skytrain", "Douglas Aircraft Company", "military aircraft"),
    "CRJ-200": ("Canadair CRJ100/200", "Canadair", "regional jet"),
    "CRJ-700": ("Canadair CRJ700 series", "Canadair", "regional jet"),
    "Cessna 172": ("Cessna 172 Skyhawk", "Cessna", "light aircraft"),
    "Cessna 208": ("Cessna 208 Caravan", "Cessna", "light aircraft"),
    "Cessna Citation": ("Cessna Citation", "Cessna", "business jet"),
    "Challenger 600": ("Canadair Challenger", "Canadair", "business jet"),
    "DC-10": ("McDonnell Douglas DC-10", "McDonnell Douglas", "wide-body airliner"),
    "DC-3": ("Douglas DC-3", "Douglas Aircraft Company", "piston airliner"),
    "DC-6": ("Douglas DC-6", "Douglas Aircraft Company", "piston airliner"),
    "DC-8": ("Douglas DC-8", "Douglas Aircraft Company", "narrow-body airliner"),
    "DC-9": ("McDonnell Douglas DC-9", "McDonnell Douglas", "narrow-body airliner"),
    "DH-82": ("de Havilland Tiger Moth", "de Havilland", "light aircraft"),
    "DHC-1": ("de Havilland Canada Chipmunk", "de Havilland", "light aircraft"),
    "DHC-6": ("de Havilland Canada Twin Otter", "de Havilland", "turboprop airliner"),
    "Dash 8": ("de Havilland Canada Dash 8", "de Havilland", "turboprop airliner"),
    "DR-400": ("Robin DR400", "Robin", "light aircraft"),
    "Dornier 328": ("Dornier 328 series", "Dornier", "turboprop airliner"),
    "EMB-120": ("Embraer EMB 120 Brasilia", "Embraer", "turboprop airliner"),
    "Embraer E-Jet": ("Embraer E-Jet family", "Embraer", "regional jet"),
    "Embraer ERJ 145": ("Embraer ERJ family", "Embraer", "regional jet"),
    "Embraer Legacy 600": ("Embraer Legacy 600 series", "Embraer", "business jet"),
    "Eurofighter Typhoon": ("Eurofighter Typhoon series", "Eurofighter", "military aircraft"),
    "F-16": ("F-16 Fighting Falcon", "Lockheed Martin", "military aircraft"),
    "F/A-18": ("McDonnell Douglas F/A-18 Hornet", "McDonnell Douglas", "military aircraft"),
    "Falcon 2000": ("Dassault Falcon 2000", "Dassault Aviation", "business jet"),
    "Falcon 900": ("Dassault Falcon 900", "Dassault Aviation", "business jet"),
    "Fokker 100": ("Fokker 100 series", "Fokker", "regional jet"),
    "Fokker 50": ("Fokker 50 series", "Fokker", "turboprop airliner"),
    "Fokker 70": ("Fokker 70 series", "Fokker", "regional jet"),
    "Global Express": ("Bombardier Global Express", "Bombardier Aerospace", "business jet"),
    "Gulfstream": ("Gulfstream business jet", "Gulfstream Aerospace", "business jet"),
    "Hawk T1": ("BAe Hawk", "British Aerospace", "military aircraft"),
    "Il-76": ("Ilyushin Il-76", "Ilyushin", "military aircraft"),
    "King Air": ("Beechcraft King Air", "Beechcraft", "light aircraft"),
    "L-1011": ("Lockheed L-1011 TriStar", "Lockheed Corporation", "wide-body airliner"),
    "MD-11": ("McDonnell Douglas MD-11", "McDonnell Douglas", "wide-body airliner"),
    "MD-80": ("McDonnell Douglas MD-80 series", "McDonnell Douglas", "narrow-body airliner"),
    "MD-90": ("McDonnell Douglas MD-90", "McDonnell Douglas", "narrow-body airliner"),
    "Metroliner": ("Fairchild Swearingen Metroliner", "Fairchild", "turboprop airliner"),
    "PA-28": ("Piper PA-28 Cherokee", "Piper", "light aircraft"),
    "SR-20": ("Cirrus SR20", "Cirrus Aircraft", "light aircraft"),
    "Saab 2000": ("Saab 2000 series", "Saab", "turboprop airliner"),
    "Saab 340": ("Saab 340 series", "Saab", "turboprop airliner"),
    "Spitfire": ("Supermarine Spitfire", "Supermarine", "military aircraft"),
    "Tornado": ("Panavia Tornado", "Panavia", "military aircraft"),
    "Tu-134": ("Tupolev Tu-134", "Tupolev", "narrow-body airliner"),
    "Tu-154": ("Tupolev Tu-154", "Tupolev", "narrow-body airliner"),
    "Yak-42": ("Yakovlev Yak-42", "Yakovlev", "narrow-body airliner"),
}

# FGVC variant -> family, for the variants whose family is not the variant's own name
_VARIANT_FAMILY_PREFIX = [  # (variant prefix, family), first match wins
    ("707-", "Boeing 707"), ("727-", "Boeing 727"), ("737-", "Boeing 737"), ("747-", "Boeing 747"),
    ("757-", "Boeing 757"), ("767-", "Boeing 767"), ("777-", "Boeing 777"), ("A300", "A300"), ("A318", "A320"),
    ("A319", "A320"), ("A320", "A320"), ("A321", "A320"), ("A330-", "A330"), ("A340-", "A340"),
    ("BAE 146-", "BAE 146"), ("CRJ-900", "CRJ-700"), ("Cessna 525", "Cessna Citation"),
    ("Cessna 560", "Cessna Citation"), ("DC-9-", "DC-9"), ("DHC-8-", "Dash 8"), ("E-1", "Embraer E-Jet"),
    ("ERJ 1", "Embraer ERJ 145"), ("F-16", "F-16"), ("Gulfstream ", "Gulfstream"), ("MD-87", "MD-80"),
    ("Model B200", "King Air"),
]


def aircraft_family(variant: str) -> str:
    """FGVC-Aircraft family of a variant (``737-800`` -> ``Boeing 737``)."""
    if variant in AIRCRAFT_FAMILIES:
        return variant
    for prefix, family in _VARIANT_FAMILY_PREFIX:
        if variant.startswith(prefix):
            return family
    raise KeyError(f"no FGVC-Aircraft family known for variant {variant!r}")


# ------------------------------------------------------------------------------------------------ Stanford Cars
CAR_MAKES_MULTIWORD = ("AM General", "Aston Martin", "Land Rover")
CAR_MAKE_COUNTRY = {  # brand origin
    "AM General": "American", "Acura": "Japanese", "Aston Martin": "British", "Audi": "German", "BMW": "German",
    "Bentley": "British", "Bugatti": "French", "Buick": "American", "Cadillac": "American", "Chevrolet": "American",
    "Chrysler": "American", "Daewoo": "Korean", "Dodge": "American", "Eagle": "American", "FIAT": "Italian",
    "Ferrari": "Italian", "Fisker": "American", "Ford": "American", "GMC": "American", "Geo": "American",
    "HUMMER": "American", "Honda": "Japanese", "Hyundai": "Korean", "Infiniti": "Japanese", "Isuzu": "Japanese",
    "Jaguar": "British", "Jeep": "American", "Lamborghini": "Italian", "Land Rover": "British", "Lincoln": "American",
    "MINI": "British", "Maybach": "German", "Mazda": "Japanese", "McLaren": "British", "Mercedes-Benz": "German",
    "Mitsubishi": "Japanese", "Nissan": "Japanese", "Plymouth": "American", "Porsche": "German", "Ram": "American",
    "Rolls-Royce": "British", "Scion": "Japanese", "Spyker": "Dutch", "Suzuki": "Japanese", "Tesla": "American",
    "Toyota": "Japanese", "Volkswagen": "German", "Volvo": "Swedish", "smart": "German",
}
# body-type word in the class name -> body type node; "Cab" (Crew/Extended/Regular/Club/Quad Cab) is a pickup
CAR_BODY_WORDS = [("Convertible", "convertible"), ("Minivan", "minivan"), ("Van", "van"), ("Wagon", "station wagon"),
                  ("SUV", "SUV"), ("Cab", "pickup truck"), ("Coupe", "coupe"), ("Hatchback", "hatchback"),
                  ("Sedan", "sedan")]
CAR_BODY_FIXES = {  # names without a body word, or with two, decided by hand from the model
    "Acura TL Type-S 2008": "sedan", "Acura Integra Type R 2001": "coupe", "Buick Regal GS 2012": "sedan",
    "Chevrolet Corvette ZR1 2012": "coupe", "Chevrolet Corvette Ron Fellows Edition Z06 2007": "coupe",
    "Chevrolet HHR SS 2010": "station wagon", "Chevrolet Cobalt SS 2010": "coupe",
    "Chevrolet TrailBlazer SS 2009": "SUV", "Chrysler 300 SRT-8 2010": "sedan", "Dodge Challenger SRT8 2011": "coupe",
    "Dodge Charger SRT-8 2009": "sedan", "FIAT 500 Abarth 2012": "hatchback",
    "Ford Ranger SuperCab 2011": "pickup truck",
    "Ford E-Series Wagon Van 2012": "van", "Jaguar XK XKR 2012": "coupe",
    "Lamborghini Gallardo LP 570-4 Superleggera 2012": "coupe", "Ram C/V Cargo Van Minivan 2012": "minivan",
    "Rolls-Royce Phantom Drophead Coupe Convertible 2012": "convertible",
}
CAR_BODY_GROUP = {"sedan": "passenger car", "coupe": "passenger car", "convertible": "passenger car",
                  "hatchback": "passenger car", "station wagon": "passenger car", "SUV": "utility vehicle",
                  "pickup truck": "utility vehicle", "van": "utility vehicle", "minivan": "utility vehicle"}


def car_make(name: str) -> str:
    for make in CAR_MAKES_MULTIWORD:
        if name.startswith(make + " "):
            return make
    return name.split()[0]


def car_body(name: str) -> str:
    if name in CAR_BODY_FIXES:
        return CAR_BODY_FIXES[name]
    words = name.split()
    for word, body in CAR_BODY_WORDS:
        if word in words:
            return body
    raise KeyError(f"no body type known for car {name!r}")
