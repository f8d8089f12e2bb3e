"""Hand-written trees (data for zeroshot_trees.py): SUN397, Food-101, Flowers-102, Oxford Pets, DTD, EuroSAT, PCAM.

Written top-down as nested groups ``{level 2: {level 1: [leaves]}}``; the rationale of each is in its ``description``
(zeroshot_trees.py).
"""

from __future__ import annotations

# SUN397: the official SUN three-level hierarchy's categories (3 at the top, 16 below; vision.princeton.edu/projects/
# 2010/SUN/hierarchy), renamed for prompts. The official file lets a scene sit in several categories; each scene is
# given its single most natural one here, by hand.
SUN397 = {
    "indoor scene": {
        "indoor shop or restaurant": [
            "bakery shop", "banquet hall", "bar", "bazaar indoor", "beauty salon", "bistro indoor", "bookstore",
            "booth indoor", "butchers shop", "cafeteria", "candy store", "clothing store", "coffee shop",
            "delicatessen", "diner indoor", "drugstore", "fastfood restaurant", "florist shop indoor", "food court",
            "general store indoor", "gift shop", "ice cream parlor", "jewelry shop", "laundromat", "market indoor",
            "music store", "pharmacy", "pub indoor", "restaurant", "shoe shop", "shopping mall indoor", "supermarket",
            "sushi bar", "thriftshop", "toyshop", "videostore"],
        "indoor workplace": [
            "anechoic chamber", "assembly line", "auto factory", "biology laboratory", "brewery indoor",
            "cheese factory", "chemistry lab", "chicken coop indoor", "clean room", "computer room",
            "conference center", "conference room", "control room", "cubicle office", "dentists office",
            "engine room", "factory indoor", "greenhouse indoor", "hospital room", "kennel indoor", "music studio",
            "office", "operating room", "physics laboratory", "reception", "restaurant kitchen", "server room",
            "television studio", "veterinarians office", "warehouse indoor", "wine cellar barrel storage",
            "wine cellar bottle storage"],
        "room in a home or hotel": [
            "attic", "balcony interior", "basement", "bathroom", "bedroom", "bow window indoor", "childs room",
            "closet", "corridor", "dinette home", "dining room", "dorm room", "garage indoor", "home office",
            "hotel room", "jacuzzi indoor", "kitchen", "kitchenette", "living room", "lobby", "nursery", "pantry",
            "parlor", "playroom", "poolroom home", "shower", "staircase", "utility room", "wet bar", "youth hostel"],
        "vehicle interior or station": [
            "airplane cabin", "airport terminal", "baggage claim", "berth", "bus interior", "car interior backseat",
            "car interior frontseat", "cockpit", "dinette vehicle", "dining car", "elevator door",
            "elevator interior", "elevator shaft", "escalator indoor", "galley", "hangar indoor",
            "limousine interior", "parking garage indoor", "pilothouse indoor", "subway interior",
            "subway station platform", "van interior", "waiting room"],
        "indoor sports or leisure place": [
            "amusement arcade", "badminton court indoor", "ball pit", "ballroom", "bowling alley", "boxing ring",
            "casino indoor", "discotheque", "firing range indoor", "game room", "gymnasium indoor",
            "ice skating rink indoor", "locker room", "martial arts gym", "movie theater indoor",
            "poolroom establishment", "recreation room", "sauna", "squash court", "swimming pool indoor",
            "tennis court indoor", "volleyball court indoor", "wrestling ring indoor"],
        "indoor cultural or civic place": [
            "apse indoor", "aquarium", "archive", "art gallery", "art school", "art studio", "atrium public",
            "auditorium", "burial chamber", "catacomb", "cathedral indoor", "church indoor", "classroom",
            "cloister indoor", "courtroom", "jail cell", "jail indoor", "kindergarden classroom", "lecture room",
            "library indoor", "mosque indoor", "museum indoor", "podium indoor", "pulpit", "stage indoor",
            "synagogue indoor", "theater indoor procenium", "theater indoor seats", "throne room"],
    },
    "outdoor natural scene": {
        "water, ice or snow scene": [
            "bayou", "beach", "canal natural", "coast", "creek", "crevasse", "hot spring", "ice floe", "ice shelf",
            "iceberg", "islet", "lake natural", "marsh", "ocean", "pond", "river", "sandbar", "sea cliff",
            "snowfield", "swamp", "underwater coral reef", "waterfall block", "waterfall fan", "waterfall plunge",
            "watering hole", "wave"],
        "mountain, hill, desert or sky scene": [
            "badlands", "butte", "canyon", "cavern indoor", "cliff", "desert sand", "desert vegetation", "hill",
            "mountain", "mountain snowy", "rock arch", "sky", "valley", "volcano"],
        "forest, field or jungle scene": [
            "bamboo forest", "corn field", "field cultivated", "field wild", "forest broadleaf", "forest needleleaf",
            "hayfield", "pasture", "rainforest", "rice paddy", "wheat field"],
        "natural scene with man-made elements": ["forest path", "forest road", "raft", "rope bridge", "trench"],
    },
    "outdoor man-made scene": {
        "outdoor transportation site": [
            "arrival gate outdoor", "boat deck", "boathouse", "bridge", "canal urban", "control tower outdoor",
            "covered bridge exterior", "crosswalk", "dock", "gas station", "hangar outdoor", "harbor", "heliport",
            "highway", "landing deck", "lido deck outdoor", "lift bridge", "lighthouse", "lock chamber",
            "parking garage outdoor", "parking lot", "promenade deck", "railroad track", "runway", "street",
            "toll plaza", "train railway", "train station platform", "viaduct"],
        "cultural or historical building": [
            "abbey", "amphitheater", "aqueduct", "arch", "basilica", "campus", "castle", "cathedral outdoor",
            "cemetery", "church outdoor", "courthouse", "kasbah", "library outdoor", "mausoleum", "moat water",
            "monastery outdoor", "mosque outdoor", "observatory outdoor", "pagoda", "palace", "planetarium outdoor",
            "podium outdoor", "ruin", "schoolhouse", "synagogue outdoor", "temple east asia", "temple south asia"],
        "sports field, park or leisure space": [
            "amusement park", "athletic field outdoor", "baseball field", "basketball court outdoor", "batters box",
            "boardwalk", "botanical garden", "bullring", "campsite", "carrousel", "driving range outdoor", "fairway",
            "gazebo exterior", "golf course", "ice skating rink outdoor", "labyrinth outdoor", "park", "pavilion",
            "picnic area", "playground", "putting green", "racecourse", "raceway", "riding arena", "sandbox",
            "skatepark", "ski resort", "ski slope", "stadium baseball", "stadium football", "swimming pool outdoor",
            "tennis court outdoor", "tent outdoor", "track outdoor", "volleyball court outdoor"],
        "industrial or construction site": [
            "construction site", "dam", "electrical substation", "excavation", "garbage dump", "industrial area",
            "landfill", "nuclear power plant outdoor", "oil refinery outdoor", "oilrig", "power plant outdoor",
            "water tower", "wind farm"],
        "house, cabin, garden or farm": [
            "balcony exterior", "barn", "barndoor", "bow window outdoor", "cabin outdoor", "chalet",
            "chicken coop outdoor", "corral", "cottage garden", "doorway outdoor", "driveway", "fishpond",
            "formal garden", "greenhouse outdoor", "herb garden", "hot tub outdoor", "house", "hunting lodge outdoor",
            "igloo", "kennel outdoor", "mansion", "manufactured home", "oast house", "orchard", "outhouse outdoor",
            "patio", "shed", "ski lodge", "stable", "topiary garden", "tree farm", "tree house", "vegetable garden",
            "veranda", "vineyard", "windmill", "yard"],
        "commercial building, market or town": [
            "alley", "apartment building outdoor", "bazaar outdoor", "building facade", "courtyard", "diner outdoor",
            "fire escape", "fire station", "fountain", "general store outdoor", "hospital", "hotel outdoor",
            "inn outdoor", "market outdoor", "medina", "motel", "office building", "phone booth", "plaza",
            "residential neighborhood", "restaurant patio", "shopfront", "skyscraper", "slum", "ticket booth",
            "tower", "village"],
    },
}

# Food-101: dish type -> course, by hand (Food-101 has no taxonomy).
FOOD101 = {
    "sweet dish": {
        "cake or pie": ["apple pie", "carrot cake", "cheesecake", "chocolate cake", "cup cakes", "red velvet cake",
                        "strawberry shortcake"],
        "pastry": ["baklava", "beignets", "cannoli", "churros", "donuts", "macarons"],
        "custard or pudding": ["bread pudding", "chocolate mousse", "creme brulee", "panna cotta", "tiramisu"],
        "frozen dessert": ["frozen yogurt", "ice cream"],
        "sweet breakfast": ["french toast", "pancakes", "waffles"],
    },
    "starter or side dish": {
        "salad": ["beet salad", "caesar salad", "caprese salad", "greek salad", "seaweed salad"],
        "soup": ["clam chowder", "french onion soup", "hot and sour soup", "lobster bisque", "miso soup"],
        "dip": ["guacamole", "hummus"],
        "bread snack": ["bruschetta", "garlic bread"],
        "fried side dish": ["french fries", "onion rings", "poutine"],
        "appetizer": ["cheese plate", "deviled eggs", "edamame", "escargots", "falafel", "foie gras"],
    },
    "main dish": {
        "meat dish": ["baby back ribs", "chicken curry", "chicken wings", "filet mignon", "peking duck", "pork chop",
                      "prime rib", "steak"],
        "raw fish or meat dish": ["beef carpaccio", "beef tartare", "ceviche", "sashimi", "tuna tartare"],
        "seafood dish": ["crab cakes", "fish and chips", "fried calamari", "grilled salmon", "mussels", "oysters",
                         "scallops", "shrimp and grits"],
        "pasta dish": ["gnocchi", "lasagna", "macaroni and cheese", "ravioli", "spaghetti bolognese",
                       "spaghetti carbonara"],
        "noodle dish": ["pad thai", "pho", "ramen"],
        "rice dish": ["bibimbap", "fried rice", "paella", "risotto", "sushi"],
        "egg dish": ["eggs benedict", "huevos rancheros", "omelette"],
        "sandwich": ["club sandwich", "croque madame", "grilled cheese sandwich", "hamburger", "hot dog",
                     "lobster roll sandwich", "pulled pork sandwich"],
        "tortilla dish": ["breakfast burrito", "chicken quesadilla", "nachos", "tacos"],
        "dumpling or roll": ["dumplings", "gyoza", "samosa", "spring rolls", "takoyaki"],
        "flatbread dish": ["pizza"],
    },
}

# Flowers-102: botanical family (APG IV) -> major angiosperm clade, by hand from each flower's genus.
_FLOWER_FAMILIES = {
    "aster": ["english marigold", "globe thistle", "colt's foot", "spear thistle", "purple coneflower", "artichoke",
              "mexican aster", "barbeton daisy", "marigold", "oxeye daisy", "common dandelion", "sunflower",
              "bishop of llandaff", "orange dahlia", "pink and yellow dahlia", "black-eyed susan", "osteospermum",
              "gazania", "blanket flower"],
    "buttercup": ["monkshood", "globe flower", "love in the mist", "lenten rose", "buttercup", "japanese anemone",
                  "windflower", "clematis", "columbine"],
    "orchid": ["hard-leaved pocket orchid", "moon orchid", "ruby-lipped cattleya"],
    "lily": ["tiger lily", "fritillary", "toad lily"],
    "iris": ["yellow iris", "sword lily", "spring crocus", "bearded iris", "blackberry lily"],
    "ginger": ["red ginger", "siam tulip", "cautleya spicata"],
    "amaryllis": ["cape flower", "daffodil", "hippeastrum"],
    "arum": ["giant white arum lily", "anthurium"],
    "bromeliad": ["air plant", "bromelia"],
    "bird-of-paradise": ["bird of paradise"], "alstroemeria": ["peruvian lily"], "colchicum": ["fire lily"],
    "asparagus": ["grape hyacinth"], "canna": ["canna lily"],
    "evening primrose": ["pink primrose", "gaura"], "bellflower": ["canterbury bells", "balloon flower"],
    "pea": ["sweet pea"], "plantain": ["snapdragon", "foxglove"], "protea": ["king protea"],
    "honeysuckle": ["pincushion flower"], "poppy": ["corn poppy", "californian poppy", "tree poppy"],
    "amaranth": ["prince of wales feathers"], "gentian": ["stemless gentian", "bolero deep blue"],
    "carnation": ["sweet william", "carnation"], "phlox": ["garden phlox"],
    "carrot": ["alpine sea holly", "great masterwort"], "spurge": ["poinsettia"],
    "mustard": ["wallflower", "watercress"], "nightshade": ["petunia", "thorn apple"], "violet": ["wild pansy"],
    "primrose": ["primula", "cyclamen"], "geranium": ["pelargonium", "geranium"],
    "morning glory": ["silverbush", "morning glory"], "heath": ["azalea"], "rose": ["rose"],
    "passion flower": ["passion flower"], "lotus": ["lotus"], "dogbane": ["frangipani", "desert-rose"],
    "mallow": ["hibiscus", "tree mallow", "mallow"], "mint": ["bee balm"], "four o'clock": ["bougainvillea"],
    "tea": ["camellia"], "acanthus": ["mexican petunia"], "trumpet vine": ["trumpet creeper"],
    "magnolia": ["magnolia"], "water lily": ["water lily"],
}
_MONOCOTS = {"orchid", "lily", "iris", "ginger", "amaryllis", "arum", "bromeliad", "bird-of-paradise", "alstroemeria",
             "colchicum", "asparagus", "canna"}


def _flower_clade(family: str) -> str:
    if family in _MONOCOTS:
        return "monocot flower"
    return {"magnolia": "magnoliid flower", "water lily": "early-diverging flowering plant"}.get(family,
                                                                                             "eudicot flower")


FLOWERS102: dict[str, dict[str, list[str]]] = {}
for _fam, _leaves in _FLOWER_FAMILIES.items():
    FLOWERS102.setdefault(_flower_clade(_fam), {})[f"flower of the {_fam} family"] = _leaves

# Oxford-IIIT Pets: breed -> breed group -> species. Dogs by FCI group (UKC for the American Bulldog and the American
# Pit Bull Terrier, which the FCI does not list); cats by coat.
PETS = {
    "cat": {
        "long-haired cat": ["Birman", "Maine Coon", "Persian", "Ragdoll"],
        "short-haired cat": ["Abyssinian", "Bengal", "Bombay", "British Shorthair", "Egyptian Mau", "Russian Blue",
                             "Siamese"],
        "hairless cat": ["Sphynx"],
    },
    "dog": {
        "terrier": ["American Pit Bull Terrier", "Scottish Terrier", "Staffordshire Bull Terrier", "Wheaten Terrier",
                    "Yorkshire Terrier"],
        "hound": ["Basset Hound", "Beagle"],
        "gun dog": ["English Cocker Spaniel", "English Setter", "German Shorthaired"],
        "working dog": ["American Bulldog", "Boxer", "Great Pyrenees", "Leonberger", "Newfoundland", "Saint Bernard"],
        "toy dog": ["Chihuahua", "Havanese", "Japanese Chin", "Miniature Pinscher", "Pug"],
        "spitz-type dog": ["Keeshond", "Pomeranian", "Samoyed", "Shiba Inu"],
    },
}

# DTD: by the dominant visual primitive (DTD has no taxonomy); adjectives, to fit "a photo of a {} texture."
DTD = {
    "patterned": {
        "linear": ["banded", "crosshatched", "grooved", "lined", "pleated", "stratified", "striped", "zigzagged"],
        "spotty": ["blotchy", "dotted", "flecked", "freckled", "polka-dotted", "smeared", "sprinkled", "stained",
                   "studded"],
        "curved": ["marbled", "paisley", "spiralled", "swirly", "veined"],
    },
    "fabric-like": {
        "lattice-like": ["braided", "chequered", "grid", "honeycombed", "interlaced", "knitted", "meshed", "waffled",
                         "woven"],
        "wispy": ["cobwebbed", "fibrous", "frilly", "gauzy", "lacelike", "matted"],
    },
    "uneven": {
        "holey": ["bubbly", "perforated", "pitted", "porous", "potholed"],
        "rough": ["bumpy", "cracked", "crystalline", "scaly", "wrinkled"],
    },
}

# EuroSAT: CORINE land cover level 1 (the nomenclature the EuroSAT classes come from), then natural vs. used land.
EUROSAT = {
    "land used by people": {
        "agricultural area": ["annual crop land", "pasture land", "permanent crop land"],
        "artificial surface": ["highway or road", "industrial buildings or commercial buildings",
                               "residential buildings or homes or apartments"],
    },
    "natural area": {
        "forest or semi-natural area": ["forest", "brushland or shrubland"],
        "water body": ["river", "lake or sea"],
    },
}

# PCAM: two classes, one root.
PCAM = {"lymph node tissue": ["lymph node", "lymph node containing metastatic tumor tissue"]}
